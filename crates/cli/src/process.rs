//! Local processes and ports the devnet and benchmarks start: free loopback ports, and
//! stopping children by the pids we hold (never by name).

use anyhow::bail;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free loopback TCP port, never one this process handed out before: the kernel may offer a
/// just-released port again, and two services of one devnet must not be given the same one.
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if GIVEN
            .lock()
            .map_err(|_| anyhow::anyhow!("port registry poisoned"))?
            .insert(port)
        {
            return Ok(port);
        }
    }
    bail!("no free loopback port after 64 tries: is the machine out of ephemeral ports?")
}

/// Stop children by their pids: SIGTERM, then SIGKILL after a grace period.
pub fn stop(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for child in children.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
