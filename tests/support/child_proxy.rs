//! tagwarden as a child process (the built binary, `serve --config`), for faults
//! that must not share the test's process: its own file-descriptor limit (set
//! with `ulimit -n` in the `sh` that execs it), its own memory and CPU time,
//! read from `/proc/<pid>` (Linux).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::repo;
use super::http::{exchange, parse_response};

/// A running `tagwarden serve`; killed when dropped.
pub struct ChildProxy {
    child: Child,
    pub pid: u32,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The child's stderr (its log), a file in `dir`.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildProxy {
    /// Starts tagwarden in front of `origin` with the shipped rules, both
    /// listeners on ephemeral loopback ports, `limits` as the `[limits]` table's
    /// body, and at most `nofile` open file descriptors when given.
    pub fn start(origin: SocketAddr, limits: &str, nofile: Option<u64>) -> ChildProxy {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tagwarden.toml");
        let rules = repo().join("rules");
        std::fs::write(
            &config,
            format!(
                "rules = {rules:?}\n[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.1:0\"\n\
                 [upstream]\nurl = \"http://{origin}\"\n[limits]\n{limits}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("stderr.log");
        let bin = env!("CARGO_BIN_EXE_tagwarden");
        let ulimit = nofile.map(|n| format!("ulimit -n {n} && ")).unwrap_or_default();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{ulimit}exec \"$0\" serve --config \"$1\""))
            .arg(bin)
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env("TAGWARDEN_THREADS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        // "tagwarden listening on http://A/ (admin http://B/metrics)"
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = |after: &str| -> SocketAddr {
            let rest = line.split(after).nth(1).unwrap_or_else(|| panic!("no {after} in {line:?}"));
            rest.split('/').next().unwrap().parse().unwrap()
        };
        let (proxy, admin) = (addr("listening on http://"), addr("admin http://"));
        ChildProxy { child, pid, proxy, admin, log, _dir: dir }
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid, field)
    }

    /// User + system CPU time so far, in clock ticks (`/proc/<pid>/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // After the `(comm)` field: state is field 3, utime 14 and stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Open file descriptors now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }

    /// A counter or gauge from `/metrics` (0 when absent).
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let raw = exchange(self.admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
        let text = parse_response(&raw, false).text();
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels).and_then(|v| v.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Lines of the child's log so far that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/proc/<pid>/status` field in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Polls `check` every 50 ms until it holds or `guard` passes (a hang guard,
/// not a timing assertion); returns whether it held.
pub async fn eventually(guard: Duration, mut check: impl FnMut() -> bool) -> bool {
    let tries = (guard.as_millis() / 50).max(1);
    for _ in 0..tries {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}
