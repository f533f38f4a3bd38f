//! The request-head deadline (`[limits] request_head_timeout_seconds`): a
//! connection must deliver its first request head — through the blank line
//! that ends it — within the deadline, however it trickles the bytes
//! (slowloris). pingora's own read timeout is per read, so one byte a minute
//! keeps a connection forever; this wrapper around the client stream bounds
//! the whole head. Later requests on a keep-alive connection are bounded by the
//! idle timeout. Over TLS it wraps the decrypted stream (the handshake has its
//! own deadline in the accept loop); an HTTP/2 connection is not wrapped (its
//! frames have no blank line) — h2c's preface ends with one, so it disarms.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, IO, Peek, Shutdown, SocketDigest, Ssl, TimingDigest,
    UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::metrics::{Metrics, Rejection};

/// A client stream whose reads fail with `TimedOut` once the deadline passes
/// before the first request head has ended.
#[derive(Debug)]
pub struct HeadDeadline<S = Stream> {
    inner: S,
    /// `None` once the head has ended.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last bytes read, to find `\r\n\r\n` (or `\n\n`) across reads.
    tail: [u8; 3],
    read_any: bool,
    metrics: Metrics,
}

impl<S: IO> HeadDeadline<S> {
    pub fn new(inner: S, timeout: Duration, metrics: Metrics) -> HeadDeadline<S> {
        HeadDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            tail: [0; 3],
            read_any: false,
            metrics,
        }
    }

    /// Follows the bytes read; disarms the deadline at the end of the head.
    fn saw(&mut self, bytes: &[u8]) {
        self.read_any |= !bytes.is_empty();
        for b in bytes {
            let ended = *b == b'\n' && (self.tail[2] == b'\n' || (self.tail[2] == b'\r' && self.tail[1] == b'\n'));
            self.tail = [self.tail[1], self.tail[2], *b];
            if ended {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<S: IO> AsyncRead for HeadDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    let new = buf.filled()[before..].to_vec();
                    this.saw(&new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => {
                    this.deadline = None;
                    // A connection that never sent a byte (a browser's preconnect) is closed
                    // quietly; one that started a head and stalled is a refused request.
                    if this.read_any {
                        this.metrics.rejected(Rejection::RequestHeadTimeout);
                    }
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head deadline")))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl<S: IO> AsyncWrite for HeadDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// === the pingora stream traits, forwarded to the inner stream ===

#[async_trait]
impl<S: IO> Shutdown for HeadDeadline<S> {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl<S: IO> UniqueID for HeadDeadline<S> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl<S: IO> Ssl for HeadDeadline<S> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl<S: IO> GetTimingDigest for HeadDeadline<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl<S: IO> GetProxyDigest for HeadDeadline<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl<S: IO> GetSocketDigest for HeadDeadline<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl<S: IO> Peek for HeadDeadline<S> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
