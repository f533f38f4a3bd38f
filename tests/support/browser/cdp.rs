//! A small Chrome DevTools Protocol client over a WebSocket (tokio-tungstenite):
//! numbered commands answered through one-shot channels, events (with their
//! flattened `sessionId`) delivered in order on one queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type WsWriter = SplitSink<WebSocketStream<TcpStream>, Message>;

/// Hang guard for one command (not a timing assertion).
const CALL_GUARD: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One protocol event.
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub params: Value,
    /// The flattened session it belongs to; `None` for browser-level events.
    pub session: Option<String>,
}

#[derive(Debug)]
pub struct Cdp {
    writer: Arc<tokio::sync::Mutex<WsWriter>>,
    next_id: AtomicU64,
    pending: Pending,
    closed: Arc<AtomicBool>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cdp {
    /// Connects to the browser endpoint (`/devtools/browser/<id>`).
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<Cdp, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (socket, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp)
            .await
            .map_err(|e| format!("DevTools WebSocket handshake: {e}"))?;
        let (writer, mut reader) = socket.split();
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::unbounded_channel();
        let (p, c) = (pending.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                // tungstenite answers pings itself.
                let bytes = match reader.next().await {
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { continue };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let result = match v.get("error") {
                        Some(e) => Err(e.to_string()),
                        None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    if let Some(s) = lock(&p).remove(&id) {
                        let _ = s.send(result);
                    }
                } else if let Some(method) = v.get("method").and_then(Value::as_str) {
                    let _ = tx.send(Event {
                        method: method.to_string(),
                        params: v.get("params").cloned().unwrap_or(Value::Null),
                        session: v.get("sessionId").and_then(Value::as_str).map(str::to_string),
                    });
                }
            }
            c.store(true, Ordering::SeqCst);
            for (_, s) in lock(&p).drain() {
                let _ = s.send(Err("the browser closed the DevTools connection".into()));
            }
        });
        Ok(Cdp { writer, next_id: AtomicU64::new(1), pending, closed, events: tokio::sync::Mutex::new(rx) })
    }

    /// Sends one command and waits for its answer.
    pub async fn call(&self, method: &str, params: Value, session: Option<&str>) -> Result<Value, String> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(format!("{method}: the DevTools connection is closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if let Err(e) = self.writer.lock().await.send(Message::text(msg.to_string())).await {
            lock(&self.pending).remove(&id);
            return Err(format!("{method}: {e}"));
        }
        match tokio::time::timeout(CALL_GUARD, rx).await {
            Ok(Ok(r)) => r.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: no answer (connection closed)")),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(format!("{method}: no answer within {CALL_GUARD:?}"))
            }
        }
    }

    /// The next event, or `None` once `deadline` passes.
    pub async fn next_event(&self, deadline: Instant) -> Option<Event> {
        let mut rx = self.events.lock().await;
        tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten()
    }

    /// Drops every event already queued (left over from closed targets).
    pub async fn drain_events(&self) -> usize {
        let mut rx = self.events.lock().await;
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}
