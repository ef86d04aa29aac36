//! Helpers for `consort indexer` processes: one killed at random points while it follows a
//! busy chain, one built again from genesis, and their contents compared.

use super::BIN;
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// An indexer following a node, SIGKILLed and started again at random moments.
pub(crate) struct Chaos {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u32>,
}

/// Follow `api` into `db`, killing the indexer every 40 to 340 ms (a fixed pseudo-random
/// sequence; where in its work each kill lands depends on timing).
pub(crate) fn chaos(api: &str, db: &Path, log: &Path) -> Chaos {
    let stop = Arc::new(AtomicBool::new(false));
    let (api, db, log) = (api.to_string(), db.to_path_buf(), log.to_path_buf());
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut kills = 0;
        while !flag.load(Ordering::SeqCst) {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log");
            let mut child = Command::new(BIN)
                .args(["indexer", "--node", &api, "--db"])
                .arg(&db)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("start the indexer");
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            std::thread::sleep(Duration::from_millis(40 + (state >> 33) % 300));
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = said
                    .lines()
                    .filter(|l| l.contains("rror") || l.contains("Caused") || l.starts_with("    "))
                    .take(12)
                    .collect();
                panic!("the indexer stopped on its own ({status}): {tail:?}");
            }
            child.kill().expect("SIGKILL the indexer we started");
            child.wait().expect("reap");
            kills += 1;
        }
        kills
    });
    Chaos { stop, handle }
}

impl Chaos {
    /// Stop killing; how many times the indexer was killed.
    pub(crate) fn finish(self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("chaos thread")
    }
}

/// Index `api`'s blocks into `db` up to `until` (from genesis again with `rebuild`).
pub(crate) fn index_until(api: &str, db: &Path, until: u64, rebuild: bool) {
    let mut command = Command::new(BIN);
    command
        .args(["indexer", "--node", api, "--db"])
        .arg(db)
        .args(["--until", &until.to_string()]);
    if rebuild {
        command.arg("--rebuild");
    }
    let out = command.output().expect("run the indexer");
    assert!(
        out.status.success(),
        "indexer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of the index at `db`, as `consort indexer --dump` prints it.
pub(crate) fn dump(db: &PathBuf) -> String {
    let out = Command::new(BIN)
        .args(["indexer", "--dump", "--db"])
        .arg(db)
        .output()
        .expect("dump the index");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// An indexer following `api` into `db` and serving the shop API; stopped when dropped.
pub(crate) struct Serving {
    child: std::process::Child,
    /// The shop API's base URL.
    pub(crate) url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start an indexer on `db` that follows `api` and serves `/v1/shop/...` on a free port.
pub(crate) fn serving(api: &str, db: &Path, log: &Path) -> Serving {
    let port = crate::validators::free_port();
    let out = std::fs::File::create(log).expect("log");
    let child = Command::new(BIN)
        .args(["indexer", "--node", api, "--db"])
        .arg(db)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("start the indexer");
    let url = format!("http://127.0.0.1:{port}");
    crate::wait_for("the shop API", Duration::from_secs(30), || {
        crate::get(&format!("{url}/v1/shop/status")).is_some()
    });
    Serving { child, url }
}
