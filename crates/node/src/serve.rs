//! The API's HTTP server: HTTP/1 (with WebSocket upgrades) over a bounded number of
//! connections, each given a bounded time to send a request's headers and to take what the
//! server writes.
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

/// How long a write to a client may wait for the client to take bytes before the connection
/// is closed (ms). A client that stops reading (a stalled update stream, a reader that went
/// away without closing) would otherwise hold its connection, and whatever the route holds
/// for it (a stream's slot, a subscriber's place), until the TCP connection ends, which an
/// unread socket never does.
pub const WRITE_STALL_TIMEOUT_MS: u64 = 30_000;

/// How long the server pauses after a failed accept (e.g. out of file descriptors) (ms).
const ACCEPT_RETRY_MS: u64 = 1_000;

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// Longest time to send a request's headers.
    pub header_read_timeout: Duration,
    /// Longest time a write may wait for the client to read.
    pub write_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_max: API_CONNECTIONS_MAX,
            header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
            write_stall_timeout: Duration::from_millis(WRITE_STALL_TIMEOUT_MS),
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
                .serve_connection(
                    TokioIo::new(WriteStall::new(stream, limits.write_stall_timeout)),
                    service,
                )
                .with_upgrades();
            if let Err(error) = connection.await {
                debug!(%remote, %error, "API connection ended");
            }
            drop(permit);
        });
    }
}

/// A connection whose writes fail with [`std::io::ErrorKind::TimedOut`] once one has waited
/// `timeout` for the peer to take bytes. The clock runs only while a write or flush is
/// pending, so a connection that is quiet, or slow but moving, is never cut.
struct WriteStall<S> {
    inner: S,
    timeout: Duration,
    /// Set when a write or flush first waits; cleared when one goes through.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// What a write or flush returned: on progress the clock stops; while it waits, the
    /// clock runs, and the wait ends in an error once it has run `timeout`.
    fn watch<T>(
        &mut self,
        polled: std::task::Poll<std::io::Result<T>>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::{future::Future as _, task::Poll};
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read what was written to it",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(polled, cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(polled, cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
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
        // `/endless` streams without end, as an update stream does to a client that reads.
        let endless = || async {
            let chunk = bytes::Bytes::from(vec![b'x'; 1 << 16]);
            axum::body::Body::from_stream(futures::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(chunk.clone())
            }))
        };
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route("/endless", axum::routing::get(endless));
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
            ..Limits::default()
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
            ..Limits::default()
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

    #[tokio::test]
    async fn a_client_that_stops_reading_is_disconnected_and_frees_its_place() {
        let limits = Limits {
            connections_max: 1,
            write_stall_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let address = start(limits).await;
        // The only place: a stream the client never reads, so the server's writes stall once
        // the socket buffers fill.
        let mut stalled = TcpStream::connect(address).await.expect("connect");
        stalled
            .write_all(b"GET /endless HTTP/1.1\r\nhost: node\r\n\r\n")
            .await
            .expect("write");
        // Another client waits for the place, and gets it once the stalled one is cut.
        let mut next = TcpStream::connect(address).await.expect("connect");
        next.write_all(REQUEST).await.expect("write");
        let answer = response(&mut next, Duration::from_secs(10)).await;
        assert!(
            answer
                .expect("served once the stalled connection is closed")
                .starts_with("HTTP/1.1 200")
        );
        drop(stalled);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let limits = Limits {
            connections_max: 4,
            write_stall_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let address = start(limits).await;
        let mut reader = TcpStream::connect(address).await.expect("connect");
        reader
            .write_all(b"GET /endless HTTP/1.1\r\nhost: node\r\n\r\n")
            .await
            .expect("write");
        // Pauses shorter than the timeout, each followed by a read: the stream goes on.
        let mut buffer = vec![0; 1 << 16];
        let mut total = 0;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer))
                .await
                .expect("bytes keep coming")
                .expect("read");
            assert!(
                read > 0,
                "the server closed a connection that was being read"
            );
            total += read;
        }
        assert!(total > 0);
    }
}
