//! Running the proxy: our own accept loop over an already-bound listener (so
//! tests bind `127.0.0.1:0` and run in-process), each connection handed to
//! pingora's HTTP/1 engine, and a bounded graceful drain on shutdown.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::server::configuration::ServerConf;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Warden;

/// Serves `warden` on `listener` until `shutdown` turns true, then stops
/// accepting, tells keep-alive connections to close after their current
/// request, and waits up to `grace` for in-flight requests.
pub async fn run(listener: TcpListener, warden: Warden, mut shutdown: watch::Receiver<bool>, grace: Duration) {
    let app = Arc::new(pingora::proxy::http_proxy(&Arc::new(ServerConf::default()), warden));
    let (engine_tx, engine_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let fd = tcp.as_raw_fd();
                let mut stream = Stream::from(tcp);
                stream.set_socket_digest(SocketDigest::from_raw_fd(fd));
                let (app, rx) = (app.clone(), engine_rx.clone());
                conns.spawn(async move {
                    app.process_new(Box::new(stream), &rx).await;
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
