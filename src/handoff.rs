//! Zero-downtime binary upgrade: the running process hands its listening
//! sockets to its replacement, pingora's way (`pingora::server::Fds` over a
//! Unix socket with `SCM_RIGHTS`).
//!
//! 1. Start the new binary with `tagwarden serve --upgrade …`. It binds
//!    `[listen] upgrade_socket` and waits (up to ~5 s) for the sockets.
//! 2. Send `SIGQUIT` to the old process. It sends every listening socket
//!    (proxy, TLS, redirect, admin) over the Unix socket, then stops accepting
//!    and drains its in-flight requests for up to `shutdown_grace_seconds`.
//!
//! Both processes hold the *same* listening sockets (one kernel accept queue
//! each), so a connection is never refused or reset in between: until the old
//! process stops accepting, either may take it; after, the new one does. This
//! is unlike `SO_REUSEPORT` plus restart, where the connections queued on the
//! closing socket are reset (unless `net.ipv4.tcp_migrate_req` is on).
//!
//! The upgrade socket should live in a directory only the service user can
//! enter (`/run/tagwarden`, `RuntimeDirectory=` in the systemd unit): whoever
//! can connect to it while an upgrade waits can hand the new process sockets.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

use pingora::server::Fds;

/// The roles of the listeners a process hands over (the keys sent with their fds).
pub mod role {
    pub const PROXY: &str = "listen";
    pub const TLS: &str = "tls";
    pub const REDIRECT: &str = "redirect";
    pub const ADMIN: &str = "admin";
}

/// Every role, in the order they are sent.
pub const ROLES: [&str; 4] = [role::PROXY, role::TLS, role::REDIRECT, role::ADMIN];

/// Why a hand-off failed. Names the socket path, never request data.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("upgrade socket {path}: {message}")]
    Transfer { path: String, message: String },
    #[error("upgrade socket path {0} is not UTF-8 or longer than 100 bytes")]
    Path(String),
}

fn socket_path(path: &Path) -> Result<&str, HandoffError> {
    path.to_str().filter(|p| p.len() <= 100).ok_or_else(|| HandoffError::Path(path.display().to_string()))
}

/// Sends `sockets` (role, listening fd) to a process waiting in `serve --upgrade`.
/// Blocking: retries for a few seconds while nobody listens.
pub fn send(path: &Path, sockets: &[(&'static str, RawFd)]) -> Result<usize, HandoffError> {
    let p = socket_path(path)?;
    let mut fds = Fds::new();
    for (role, fd) in sockets {
        fds.add((*role).to_string(), *fd);
    }
    fds.send_to_sock(p).map_err(|e| HandoffError::Transfer { path: p.to_string(), message: e.to_string() })
}

/// Waits on `path` for the old process's sockets (blocking, ~5 s at most) and
/// takes ownership of them.
pub fn receive(path: &Path) -> Result<HashMap<&'static str, std::net::TcpListener>, HandoffError> {
    let p = socket_path(path)?;
    let mut fds = Fds::new();
    fds.get_from_sock(p).map_err(|e| HandoffError::Transfer { path: p.to_string(), message: e.to_string() })?;
    let mut out = HashMap::new();
    for role in ROLES {
        if let Some(fd) = fds.get(role) {
            let listener = adopt(*fd);
            listener
                .set_nonblocking(true)
                .map_err(|e| HandoffError::Transfer { path: p.to_string(), message: format!("{role}: {e}") })?;
            out.insert(role, listener);
        }
    }
    Ok(out)
}

/// Takes ownership of a listening socket received with `SCM_RIGHTS`.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> std::net::TcpListener {
    // SAFETY: `fd` was just installed in this process by recvmsg(SCM_RIGHTS) in
    // `Fds::get_from_sock`; nothing else in the process knows it, owns it or
    // closes it, and the sender only ever sends listening TCP sockets. This is
    // the one `unsafe` block in the crate (`unsafe_code = "deny"` elsewhere).
    unsafe { std::net::TcpListener::from_raw_fd(fd) }
}

/// Tells the service manager about a state change (`READY=1`, `MAINPID=…`,
/// `STOPPING=1`): systemd's `sd_notify` protocol, one datagram to
/// `$NOTIFY_SOCKET`. Nothing happens without that variable (not under a
/// `Type=notify` unit), and a failure only logs: a manager that is not
/// listening must not stop the proxy.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = (|| {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state.as_bytes(), &addr)
            }
            None => sock.send_to(state.as_bytes(), &path),
        }
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// Starts this binary again, from the path it was started by (after a package
/// upgrade that is the new file; `/proc/self/exe` would still name the old,
/// deleted one), with the same arguments and `--upgrade`.
pub fn spawn_successor() -> std::io::Result<std::process::Child> {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "tagwarden".into());
    let mut rest: Vec<std::ffi::OsString> = args.filter(|a| a != "--upgrade").collect();
    if !rest.iter().any(|a| a == "serve") {
        // `tagwarden` alone is `tagwarden serve`.
        rest.insert(0, "serve".into());
    }
    rest.push("--upgrade".into());
    std::process::Command::new(program).args(rest).spawn()
}
