//! The API's HTTP server: HTTP/1 (with WebSocket upgrades) over a bounded number of
//! connections, each given a bounded time to send a request's headers.
//!
//! `axum::serve` configures neither: hyper's header read timeout needs a timer, which
//! `axum::serve` does not set, and it accepts connections without bound. So the node runs
//! hyper's connection builder itself, as `axum::serve` does inside.

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use std::{sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::{debug, warn};

/// Most API connections open at once (WebSocket subscribers included); further clients wait
/// in the listen backlog until one closes.
pub const API_CONNECTIONS_MAX: usize = 512;

/// How long a client may take to send a request's headers, and so how long an idle
/// keep-alive connection stays open (ms).
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// How long the server pauses after a failed accept (e.g. out of file descriptors) (ms).
const ACCEPT_RETRY_MS: u64 = 1_000;

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// Longest time to send a request's headers.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_max: API_CONNECTIONS_MAX,
            header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        }
    }
}

/// Connections the kernel queues for the API before they are accepted (std's default is
/// 128; clients beyond [`API_CONNECTIONS_MAX`] wait here).
pub const API_LISTEN_BACKLOG: u32 = 1024;

/// A listener for the API at `address`, for [`serve_apart`]: address reuse on (a restarted
/// node binds at once), a backlog of [`API_LISTEN_BACKLOG`].
///
/// # Errors
/// If the address cannot be bound.
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(API_LISTEN_BACKLOG).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Worker threads of the API's own runtime (see [`serve_apart`]): searches hold a worker
/// while they run, and one worker is always left for the other routes.
pub const API_WORKER_THREADS: usize = consort_indexer::api::API_WORKER_THREADS;

/// Serve `router` on `listener` within `limits` on a tokio runtime of its own, until the
/// process ends or the server fails to start.
///
/// The node's runtime runs consensus, block execution and storage; a request whose
/// connection task or answer waited in that runtime's queues behind a block being executed
/// would wait tens of milliseconds. On threads of their own, API requests compete with the
/// node only for the processor, where the kernel's scheduler shares it out fairly, and the
/// chain's work never waits behind a slow client either.
///
/// # Errors
/// If the runtime cannot be built or the listener cannot be registered with it.
pub async fn serve_apart(
    listener: std::net::TcpListener,
    router: Router,
    limits: Limits,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_WORKER_THREADS)
        .thread_name("consort-api")
        .enable_all()
        .build()?;
    // The listener is registered with the runtime that polls it.
    let served = runtime.spawn(async move {
        serve(TcpListener::from_std(listener)?, router, limits).await;
        Ok(())
    });
    let result = served
        .await
        .unwrap_or_else(|panic| Err(std::io::Error::other(panic.to_string())));
    // A runtime cannot be dropped from within another's task: let its threads go on their own.
    runtime.shutdown_background();
    result
}

/// Serve `router` on `listener` within `limits`, until the process ends.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "API accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                debug!(%remote, %error, "API connection ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpStream,
    };

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: node\r\n\r\n";

    async fn start(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits));
        address
    }

    /// Read until a whole (short) response arrived, or `wait` passed.
    async fn response(stream: &mut TcpStream, wait: Duration) -> Option<String> {
        let mut buffer = vec![0; 1024];
        let read = tokio::time::timeout(wait, stream.read(&mut buffer))
            .await
            .ok()?;
        let length = read.expect("read");
        Some(String::from_utf8_lossy(&buffer[..length]).into_owned())
    }

    #[tokio::test]
    async fn a_connection_beyond_the_bound_waits_until_another_closes() {
        let limits = Limits {
            connections_max: 1,
            header_read_timeout: Duration::from_secs(30),
        };
        let address = start(limits).await;
        let mut first = TcpStream::connect(address).await.expect("connect");
        first.write_all(REQUEST).await.expect("write");
        let answer = response(&mut first, Duration::from_secs(5)).await;
        assert!(answer.expect("first is served").starts_with("HTTP/1.1 200"));
        // The first connection stays open (keep-alive): the second is not served...
        let mut second = TcpStream::connect(address).await.expect("connect");
        second.write_all(REQUEST).await.expect("write");
        assert_eq!(
            response(&mut second, Duration::from_millis(300)).await,
            None
        );
        // ...until the first closes.
        drop(first);
        let answer = response(&mut second, Duration::from_secs(5)).await;
        assert!(
            answer
                .expect("second is served")
                .starts_with("HTTP/1.1 200")
        );
    }

    #[tokio::test]
    async fn a_client_slow_to_send_its_headers_is_disconnected() {
        let limits = Limits {
            connections_max: 4,
            header_read_timeout: Duration::from_millis(200),
        };
        let address = start(limits).await;
        let mut slow = TcpStream::connect(address).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nhost: no")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection well before 5 s");
        assert!(closed.is_err() || !String::from_utf8_lossy(&rest).contains(" 200 "));
        // An idle keep-alive connection is closed the same way.
        let mut idle = TcpStream::connect(address).await.expect("connect");
        idle.write_all(REQUEST).await.expect("write");
        assert!(response(&mut idle, Duration::from_secs(5)).await.is_some());
        let closed =
            tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "an idle connection outlived the header read timeout"
        );
    }
}
