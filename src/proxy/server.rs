//! Running the listeners: our own accept loop over an already-bound listener (so
//! tests bind `127.0.0.1:0` and run in-process), each connection handed to a
//! pingora app (the proxy's HTTP engine, or a `ServeHttp` app), and a bounded
//! graceful drain on shutdown. On the TLS listener the handshake runs in the
//! connection's task under the request-head deadline, and the app picks HTTP/2
//! or HTTP/1.1 by the ALPN result (`ServerApp::process_new`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::{ALPN, GetSocketDigest, SocketDigest, Ssl};
use pingora::server::configuration::ServerConf;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Warden;
use super::head_deadline::HeadDeadline;
use crate::metrics::{Metrics, Rejection};

/// The TLS side of a listener: the handshake's rustls config (certificates by
/// SNI from [`super::tls::CertStore`], ALPN).
pub struct TlsAcceptor(Acceptor);

impl TlsAcceptor {
    pub fn new(config: tokio_rustls::rustls::ServerConfig) -> TlsAcceptor {
        TlsAcceptor(Acceptor::from_server_config(Arc::new(config)))
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// The proxy's client listeners: plain HTTP (HTTP/1.1, and h2c when
/// `[listen] h2c`), and TLS (ALPN `h2`/`http/1.1`) when configured.
#[derive(Debug)]
pub struct ProxyListeners {
    pub plain: TcpListener,
    pub tls: Option<(TcpListener, Arc<TlsAcceptor>)>,
}

/// Serves `warden` on its listeners until `shutdown` turns true, then stops
/// accepting, tells keep-alive connections to close after their current
/// request (HTTP/2: GOAWAY), and waits up to `grace` for in-flight requests.
/// Both listeners share the connection caps.
pub async fn run(listeners: ProxyListeners, warden: Warden, shutdown: watch::Receiver<bool>, grace: Duration) {
    let caps = caps_for(&warden);
    let cfg = &warden.shared.config;
    let mut options = HttpServerOptions::default();
    options.h2c = cfg.listen.h2c;
    options.h2_idle_timeout = Some(Duration::from_secs(cfg.limits.idle_timeout_seconds));
    let h2 = h2_options(&cfg.http2);
    let mut proxy = pingora::proxy::http_proxy(&Arc::new(ServerConf::default()), warden);
    proxy.server_options = Some(options);
    proxy.h2_options = Some(h2);
    let app = Arc::new(proxy);
    let plain = serve_app_capped(listeners.plain, app.clone(), shutdown.clone(), grace, Some(caps.clone()), None);
    match listeners.tls {
        Some((l, acceptor)) => {
            let tls = serve_app_capped(l, app, shutdown, grace, Some(caps), Some(acceptor));
            tokio::join!(plain, tls);
        }
        None => plain.await,
    }
}

/// The proxy's connection caps from `[limits]`.
pub fn caps_for(warden: &Warden) -> ConnectionCaps {
    let limits = &warden.shared.config.limits;
    let head_timeout = Duration::from_secs(limits.request_head_timeout_seconds);
    let metrics = warden.shared.metrics.clone();
    ConnectionCaps::new(limits.max_connections, limits.max_connections_per_ip, head_timeout, metrics)
        .trusting(warden.shared.trusted_proxies.clone())
}

/// HTTP/2 settings from `[http2]`, on pingora's bounded defaults.
fn h2_options(c: &crate::config::Http2Config) -> pingora::protocols::http::v2::server::H2Options {
    let mut o = pingora::protocols::http::v2::server::default_h2_options();
    o.max_concurrent_streams(c.max_concurrent_streams)
        .max_header_list_size(c.max_header_list_size)
        .max_pending_accept_reset_streams(c.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(c.max_local_error_reset_streams));
    o
}

// === impl ConnectionCaps ===

/// How many client connections may be open at once, in all and per client IP
/// (`[limits] max_connections`, `max_connections_per_ip`). A connection over
/// either is answered `503` and closed at accept, before any request is read,
/// and counted in `requests_rejected_total`.
///
/// Trusted proxies (`[listen] trusted_proxies`: the load balancer in front)
/// carry many visitors on their connections, so the per-IP cap does not apply
/// to them; the total cap still does.
#[derive(Debug, Clone)]
pub struct ConnectionCaps {
    total: usize,
    per_ip: usize,
    /// Addresses exempt from `per_ip`.
    trusted: Vec<ipnet::IpNet>,
    /// `[limits] request_head_timeout_seconds`.
    head_timeout: Duration,
    metrics: Metrics,
    open: Arc<Mutex<OpenConnections>>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    /// Only addresses with an open connection: at most `total` entries.
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    open: Arc<Mutex<OpenConnections>>,
}

/// Sent to a connection over a cap, best effort (the socket is closed right after).
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

impl ConnectionCaps {
    pub fn new(total: usize, per_ip: usize, head_timeout: Duration, metrics: Metrics) -> ConnectionCaps {
        ConnectionCaps { total, per_ip, trusted: Vec::new(), head_timeout, metrics, open: Arc::default() }
    }

    /// Exempts these networks (trusted proxies) from the per-IP cap.
    pub fn trusting(mut self, trusted: Vec<ipnet::IpNet>) -> ConnectionCaps {
        self.trusted = trusted;
        self
    }

    /// A slot for a new connection from `ip`, or the reason it is refused (counted).
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Rejection> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        let refused = if open.total >= self.total {
            Some(Rejection::TooManyConnections)
        } else if from_ip >= self.per_ip && !self.trusted.iter().any(|net| net.contains(&ip)) {
            Some(Rejection::TooManyConnectionsPerIp)
        } else {
            None
        };
        if let Some(reason) = refused {
            self.metrics.rejected(reason);
            return Err(reason);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot { ip, open: self.open.clone() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The accept loop for any pingora app — the proxy, and the admin listener and
/// demo origin (`ServeHttp` apps in an `HttpServer`) — with the same back-off
/// and drain.
pub async fn serve_app<A>(listener: TcpListener, app: Arc<A>, shutdown: watch::Receiver<bool>, grace: Duration)
where
    A: ServerApp + Send + Sync + 'static,
{
    serve_app_capped(listener, app, shutdown, grace, None, None).await;
}

/// [`serve_app`] with connection caps (the proxy's and the redirect
/// listener's), and TLS when `tls` is given.
pub async fn serve_app_capped<A>(
    listener: TcpListener,
    app: Arc<A>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    caps: Option<ConnectionCaps>,
    tls: Option<Arc<TlsAcceptor>>,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let (engine_tx, engine_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            (tcp, peer) = accept_with_backoff(|| listener.accept()) => {
                let slot = match caps.as_ref().map(|c| c.admit(peer.ip())) {
                    Some(Err(_)) => {
                        // Non-blocking: a fresh socket's send buffer takes it, or the client goes without.
                        let _ = tcp.try_write(OVER_CAPACITY);
                        continue;
                    }
                    Some(Ok(slot)) => Some(slot),
                    None => None,
                };
                let _ = tcp.set_nodelay(true);
                let fd = tcp.as_raw_fd();
                let mut stream = Stream::from(tcp);
                stream.set_socket_digest(SocketDigest::from_raw_fd(fd));
                let (app, rx, tls) = (app.clone(), engine_rx.clone(), tls.clone());
                let deadline = caps.as_ref().map(|c| (c.head_timeout, c.metrics.clone()));
                conns.spawn(async move {
                    if let Some(io) = client_stream(stream, tls, deadline).await {
                        app.process_new(io, &rx).await;
                    }
                    drop(slot);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    let _ = engine_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(remaining = conns.len(), "shutdown grace period over; closing remaining connections");
        conns.abort_all();
    }
}

/// The accepted connection as the app reads it: TLS-terminated when the
/// listener is TLS (`None` when the handshake fails or misses the deadline),
/// under the request-head deadline unless it is HTTP/2 over TLS.
async fn client_stream(
    tcp: Stream,
    tls: Option<Arc<TlsAcceptor>>,
    deadline: Option<(Duration, crate::metrics::Metrics)>,
) -> Option<pingora::protocols::Stream> {
    let Some(tls) = tls else {
        return Some(match deadline {
            Some((timeout, metrics)) => Box::new(HeadDeadline::new(tcp, timeout, metrics)),
            None => Box::new(tcp),
        });
    };
    let handshake_timeout = deadline.as_ref().map_or(Duration::from_secs(10), |(t, _)| *t);
    let stream = match tokio::time::timeout(handshake_timeout, tls.0.tls_handshake(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("TLS handshake missed the request-head deadline");
            return None;
        }
    };
    Some(match (deadline, stream.selected_alpn_proto()) {
        (Some((timeout, metrics)), alpn) if alpn != Some(ALPN::H2) => {
            Box::new(HeadDeadline::new(stream, timeout, metrics))
        }
        _ => Box::new(stream),
    })
}

/// First wait after a failed `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest wait between failed `accept`s.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts the next connection. A failed `accept` (EMFILE/ENFILE when out of file
/// descriptors, ENOBUFS, ECONNABORTED…) is logged and retried after a wait that
/// doubles from 5 ms to 1 s: retrying at once would spin a core while the
/// condition lasts, and the backlog keeps the waiting connections meanwhile.
pub async fn accept_with_backoff<T, F, Fut>(mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let mut wait = ACCEPT_BACKOFF_MIN;
    loop {
        match accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "accept failed; backing off");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_failing_accept_is_retried_with_back_off_not_in_a_busy_loop() {
        const FAILURES: usize = 1000;
        let calls = AtomicUsize::new(0);
        let accept = || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < FAILURES {
                    return Err(std::io::Error::from_raw_os_error(24)); // EMFILE
                }
                std::future::pending::<std::io::Result<()>>().await
            }
        };
        // Without a back-off all the failures are burnt through at once.
        let _ = tokio::time::timeout(Duration::from_millis(100), accept_with_backoff(accept)).await;
        let tried = calls.load(Ordering::SeqCst);
        assert!(tried < 20, "{tried} accept calls in 100 ms");
    }
}
