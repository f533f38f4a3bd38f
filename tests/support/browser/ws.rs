//! A minimal RFC 6455 WebSocket client, just enough for the DevTools protocol
//! on loopback: one handshake, masked text frames out, (possibly fragmented)
//! text/binary frames in, close and ping handled. No extensions, no TLS.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest message accepted from the browser (CDP events carrying big `data:`
/// URLs can be several MiB).
const MAX_MESSAGE: usize = 256 << 20;
/// Largest handshake response head.
const MAX_HEAD: usize = 16 << 10;

/// What the reader returns.
#[derive(Debug)]
pub enum Incoming {
    /// A complete text or binary message.
    Message(Vec<u8>),
    /// A ping; the payload must be echoed in a pong.
    Ping(Vec<u8>),
    /// The peer closed the connection (close frame or EOF).
    Closed,
}

#[derive(Debug)]
pub struct WsReader {
    sock: OwnedReadHalf,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub struct WsWriter {
    sock: OwnedWriteHalf,
}

/// Connects to `ws://addr<path>` and completes the opening handshake.
pub async fn connect(addr: SocketAddr, path: &str) -> Result<(WsReader, WsWriter), String> {
    let mut sock = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    // The key only has to be 16 base64-encoded bytes; the browser on loopback
    // is our own child, so the Sec-WebSocket-Accept echo is not verified.
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.map_err(|e| format!("handshake write: {e}"))?;
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err("handshake response head too large".into());
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("connection closed during the WebSocket handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        return Err(format!("WebSocket handshake refused: {status}"));
    }
    let rest = buf[end..].to_vec();
    let (r, w) = sock.into_split();
    Ok((WsReader { sock: r, buf: rest }, WsWriter { sock: w }))
}

impl WsReader {
    async fn fill(&mut self, n: usize) -> std::io::Result<bool> {
        while self.buf.len() < n {
            let mut chunk = vec![0u8; (n - self.buf.len()).max(64 << 10)];
            let got = self.sock.read(&mut chunk).await?;
            if got == 0 {
                return Ok(false);
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads one frame: `(fin, opcode, payload)`, or `None` at EOF.
    async fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, String> {
        let io = |e: std::io::Error| e.to_string();
        if !self.fill(2).await.map_err(io)? {
            return Ok(None);
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        let mut header = 2;
        let mut len = (b1 & 0x7f) as usize;
        if len == 126 {
            if !self.fill(4).await.map_err(io)? {
                return Ok(None);
            }
            len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            header = 4;
        } else if len == 127 {
            if !self.fill(10).await.map_err(io)? {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.buf[2..10]);
            len = usize::try_from(u64::from_be_bytes(b)).map_err(|_| "frame too large")?;
            header = 10;
        }
        if len > MAX_MESSAGE {
            return Err(format!("frame of {len} bytes exceeds the {MAX_MESSAGE}-byte limit"));
        }
        let mask_len = if masked { 4 } else { 0 };
        if !self.fill(header + mask_len + len).await.map_err(io)? {
            return Ok(None);
        }
        let head = self.take(header + mask_len);
        let mut payload = self.take(len);
        if masked {
            let key = &head[header..header + 4];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        Ok(Some((fin, opcode, payload)))
    }

    /// Reads the next message, ping or close.
    pub async fn next(&mut self) -> Result<Incoming, String> {
        let mut message: Option<Vec<u8>> = None;
        loop {
            let Some((fin, opcode, payload)) = self.frame().await? else { return Ok(Incoming::Closed) };
            match opcode {
                0x8 => return Ok(Incoming::Closed),
                0x9 => return Ok(Incoming::Ping(payload)),
                0xA => continue,
                0x1 | 0x2 => message = Some(payload),
                0x0 => match message.as_mut() {
                    Some(m) => m.extend_from_slice(&payload),
                    None => return Err("continuation frame without a message".into()),
                },
                other => return Err(format!("unknown WebSocket opcode {other:#x}")),
            }
            if let Some(m) = &message
                && m.len() > MAX_MESSAGE
            {
                return Err(format!("message exceeds the {MAX_MESSAGE}-byte limit"));
            }
            if fin && let Some(m) = message.take() {
                return Ok(Incoming::Message(m));
            }
        }
    }
}

impl WsWriter {
    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key: [u8; 4] = rand::random();
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.sock.write_all(&out).await.map_err(|e| format!("WebSocket write: {e}"))
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.frame(0x1, text.as_bytes()).await
    }

    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), String> {
        self.frame(0xA, payload).await
    }
}
