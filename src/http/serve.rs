//! The accept loop. axum's own `serve` sets no header-read timeout and takes every connection
//! offered, so a client that opens thousands of connections and sends half a request on each
//! holds them (and the process's file descriptors) for ever, and the unsubscribe links stop
//! answering. Here every connection must complete its first request head within
//! [`HEADER_READ_TIMEOUT`] of being accepted, whatever it sends or does not send (hyper's own
//! header timeout starts only once HTTP/1 bytes arrive, and its HTTP/1-or-2 detection waits
//! without bound, so a silent socket or a bare HTTP/2 preface would be held for ever); idle
//! HTTP/1 keep-alive connections are dropped after as long, an HTTP/2 connection that has
//! asked nothing for as long is told to go (GOAWAY) and dropped after as long again (hyper
//! keeps one whose client answers its pings for ever), and at most
//! [`Limits::connections`] are open at once: past that, new ones wait in the kernel's backlog
//! until one closes, instead of failing with "too many open files".

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// How long a client may take to send a request's head, or stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept back from the connection cap: the database, the SMTP connections, the
/// files an import reads.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Connections open at most, however many descriptors the system allows: each costs memory.
const MOST_CONNECTIONS: u64 = 10_000;

/// How many connections the service keeps open at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: usize,
}

impl Limits {
    /// Raises this process's open-file limit as far as the system allows, and keeps the
    /// connections below it.
    pub fn for_this_process() -> Self {
        let descriptors = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        let connections = descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .clamp(64, MOST_CONNECTIONS);
        Self {
            connections: usize::try_from(connections).unwrap_or(1024),
        }
    }
}

/// What a connection's timer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Its first complete request head, due [`HEADER_READ_TIMEOUT`] after it was accepted.
    FirstHead,
    /// HTTP/2: a new request within [`HEADER_READ_TIMEOUT`] of the last, or it is asked to
    /// close (hyper never closes an idle HTTP/2 connection whose client answers its pings).
    Idle,
    /// Asked to close: the requests under way have [`HEADER_READ_TIMEOUT`] to finish.
    Closing,
    /// Nothing: hyper's own timeouts govern an HTTP/1 connection once it has asked.
    Nothing,
}

/// The requests a connection has made, as their heads reach the router.
#[derive(Default)]
struct Asked {
    /// When its latest request head arrived.
    latest: std::sync::Mutex<Option<Instant>>,
    /// Whether it speaks HTTP/2.
    http2: AtomicBool,
}

impl Asked {
    fn request<B>(&self, request: &hyper::Request<B>) {
        if request.version() == hyper::Version::HTTP_2 {
            self.http2.store(true, Ordering::Release);
        }
        *self.latest.lock().expect("never poisoned") = Some(Instant::now());
    }

    fn latest(&self) -> Option<Instant> {
        *self.latest.lock().expect("never poisoned")
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.connections));
    // Turns true when shutdown begins; every connection watches it.
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HEADER_READ_TIMEOUT));
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(stopping.clone()) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory for a moment: wait rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(stopping.clone()) => break,
        };
        let _ = stream.set_nodelay(true);
        let asked = Arc::new(Asked::default());
        let service = router.clone().map_request({
            let asked = asked.clone();
            move |request: hyper::Request<Incoming>| {
                asked.request(&request);
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            }
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let builder = builder.clone();
        let stopping = stopped(stopping.clone());
        tokio::spawn(async move {
            tokio::pin!(stopping);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let deadline = tokio::time::sleep(HEADER_READ_TIMEOUT);
            tokio::pin!(deadline);
            let mut watching = Watch::FirstHead;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    () = &mut stopping => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                        break;
                    }
                    () = &mut deadline, if watching != Watch::Nothing => {
                        let now = Instant::now();
                        match (watching, asked.latest(), asked.http2.load(Ordering::Acquire)) {
                            // No complete request head in time, or a connection told to close
                            // that has not: dropping it closes it.
                            (_, None, _) | (Watch::Closing, _, _) => break,
                            // HTTP/1: hyper's own header timeout closes an idle connection.
                            (_, Some(_), false) => watching = Watch::Nothing,
                            (_, Some(latest), true) if now >= latest + HEADER_READ_TIMEOUT => {
                                connection.as_mut().graceful_shutdown();
                                watching = Watch::Closing;
                                deadline.as_mut().reset(now + HEADER_READ_TIMEOUT);
                            }
                            (_, Some(latest), true) => {
                                watching = Watch::Idle;
                                deadline.as_mut().reset(latest + HEADER_READ_TIMEOUT);
                            }
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back: every connection has finished.
    let _ = open.acquire_many(limits.connections as u32).await;
    Ok(())
}
