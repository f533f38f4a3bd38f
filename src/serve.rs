//! `tagwarden serve`: wires the config, the rules, the admin listener, the
//! optional built-in demo origin, rule reloading and the proxy, and handles
//! SIGTERM/SIGINT with a bounded drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError, UpstreamConfig};
use pingora::apps::http_app::HttpServer;

use crate::admin::Admin;
use crate::demo::DemoOrigin;
use crate::handoff::role;
use crate::proxy::redirect::Redirect;
use crate::proxy::server::{ProxyListeners, TlsAcceptor, serve_app, serve_app_capped};
use crate::proxy::tls::CertStore;
use crate::proxy::{CaFileError, Origin, Shared, SharedError, Warden, load_ca_file};
use crate::rules::RuleErrors;

/// Command-line overrides for the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub admin: Option<SocketAddr>,
    pub rules: Option<PathBuf>,
    /// Take the listening sockets from the running process (`serve --upgrade`).
    pub upgrade: bool,
}

/// Why `serve` could not start. Each names what failed and where; none carries
/// request data.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("rules in {}:\n{errors}", dir.display())]
    Rules { dir: PathBuf, errors: RuleErrors },
    #[error("upstream {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {host} does not resolve")]
    NoAddress { host: String },
    /// `[upstream] ca_file` or `[vendors] ca_file` (`key`) cannot be used.
    #[error("{key} {source}")]
    CaFile {
        key: &'static str,
        #[source]
        source: CaFileError,
    },
    /// `[inventory] file` or `[decision_log] file` cannot be opened.
    #[error(transparent)]
    Evidence(#[from] crate::proxy::EvidenceError),
    /// The demo's mock vendor could not start.
    #[error("demo vendor: {0}")]
    DemoVendor(String),
    /// A `[[tls.certificates]]` pair cannot be used.
    #[error("tls: {0}")]
    Tls(#[from] crate::proxy::tls::CertError),
    /// The TLS settings were refused by rustls.
    #[error("tls: {0}")]
    TlsConfig(String),
    /// `--upgrade` got no sockets from the running process.
    #[error(transparent)]
    Handoff(#[from] crate::handoff::HandoffError),
    /// A listener could not be bound (`what`: listen, admin, demo origin).
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn bind_error(what: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Bind { what, addr, source }
}

/// Resolves the effective config.
pub fn effective_config(o: &Overrides) -> Result<Config, ServeError> {
    let mut cfg = match &o.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = o.listen {
        cfg.listen.address = l;
    }
    if let Some(a) = o.admin {
        cfg.admin.address = a;
    }
    if let Some(r) = &o.rules {
        cfg.rules = r.clone();
    }
    if let Some(u) = &o.upstream {
        match &mut cfg.upstream {
            Some(up) => up.url = u.clone(),
            None => cfg.upstream = Some(UpstreamConfig::new(u.clone())),
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Builds the origin from config (resolving its host once, at start-up).
pub async fn origin_for(up: &UpstreamConfig) -> Result<Origin, ServeError> {
    let invalid = |message: String| ConfigError::Invalid { path: None, key: "upstream.url", message };
    let u = url::Url::parse(&up.url).map_err(|e| invalid(e.to_string()))?;
    let tls = u.scheme() == "https";
    let host = u.host_str().ok_or_else(|| invalid("has no host".to_string()))?.to_string();
    let port = u.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| ServeError::Resolve { host: host.clone(), source })?
        .next()
        .ok_or_else(|| ServeError::NoAddress { host: host.clone() })?;
    let ca = match &up.ca_file {
        Some(path) => {
            Some(load_ca_file(path).map_err(|source| ServeError::CaFile { key: "upstream.ca_file", source })?)
        }
        None => None,
    };
    Ok(Origin {
        addr,
        tls,
        sni: up.sni.clone().unwrap_or(host),
        host_header: up.host_header.clone(),
        verify_cert: up.verify_cert,
        connect_timeout: Duration::from_secs(up.connect_timeout_seconds),
        read_timeout: Duration::from_secs(up.read_timeout_seconds),
        write_timeout: Duration::from_secs(up.write_timeout_seconds),
        ca,
    })
}

/// Everything `serve` runs, with the addresses it actually bound.
#[derive(Debug)]
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `[listen] tls_address`, as bound.
    pub tls_addr: Option<SocketAddr>,
    /// `[listen] redirect_address`, as bound.
    pub redirect_addr: Option<SocketAddr>,
    /// The listening sockets by role, for a hand-off to a new binary.
    pub sockets: Vec<(&'static str, std::os::fd::RawFd)>,
    pub demo_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    pub shutdown: watch::Sender<bool>,
    pub done: tokio::task::JoinHandle<()>,
}

/// The demo's mock support vendor, reached like a staging vendor: its host names
/// pinned to its loopback address in `[vendors] resolve`, and its throwaway CA
/// (written to a temporary file) as `[vendors] ca_file`. Hosts the operator's
/// own config already pins are left as they are.
async fn start_demo_vendor(cfg: &mut Config) -> Result<crate::demo::vendor::VendorLog, ServeError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let vendor =
        crate::demo::vendor::DemoVendor::start(loopback).await.map_err(|e| ServeError::DemoVendor(e.to_string()))?;
    let path = std::env::temp_dir().join(format!("tagwarden-demo-vendor-ca-{}.pem", std::process::id()));
    std::fs::write(&path, &vendor.ca_pem).map_err(|e| ServeError::DemoVendor(format!("{}: {e}", path.display())))?;
    for host in crate::demo::vendor::HOSTS {
        cfg.vendors.resolve.entry((*host).to_string()).or_insert(vendor.addr);
    }
    cfg.vendors.ca_file.get_or_insert(path);
    Ok(vendor.log)
}

/// Binds and starts everything; returns once listening.
pub async fn start(cfg: Config) -> Result<Running, ServeError> {
    start_inheriting(cfg, Inherited::default()).await
}

/// Listening sockets taken over from a previous process, by role
/// ([`crate::handoff::ROLES`]); a role not in it is bound afresh.
pub type Inherited = std::collections::HashMap<&'static str, std::net::TcpListener>;

/// [`start`], with sockets handed over by the process being replaced.
pub async fn start_inheriting(cfg: Config, inherited: Inherited) -> Result<Running, ServeError> {
    let policy =
        crate::rules::load_dir(&cfg.rules).map_err(|errors| ServeError::Rules { dir: cfg.rules.clone(), errors })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let mut cfg = cfg;
    let (origin, demo_addr) = match &cfg.upstream {
        Some(up) => (origin_for(up).await?, None),
        None => {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let vendor_log = start_demo_vendor(&mut cfg).await?;
            let l = TcpListener::bind(loopback).await.map_err(bind_error("demo origin", loopback))?;
            let addr = l.local_addr().map_err(bind_error("demo origin", loopback))?;
            let demo = Arc::new(HttpServer::new_app(DemoOrigin { vendor_log: Some(vendor_log) }));
            tokio::spawn(serve_app(l, demo, shutdown_rx.clone(), Duration::from_secs(1)));
            (Origin::plain(addr), Some(addr))
        }
    };
    let grace = Duration::from_secs(cfg.limits.shutdown_grace_seconds);
    let shared = Arc::new(Shared::new(policy, cfg.clone(), origin).map_err(|e| match e {
        SharedError::CaFile(source) => ServeError::CaFile { key: "vendors.ca_file", source },
        SharedError::Evidence(e) => ServeError::Evidence(e),
    })?);
    let (listen, admin) = (cfg.listen.address, cfg.admin.address);
    let sockets = Sockets::bind(&shared.config, listen, admin, inherited).await?;
    start_sockets(shared, sockets, grace, shutdown_tx, shutdown_rx, demo_addr).await
}

/// Every listener, bound (or inherited).
#[derive(Debug)]
struct Sockets {
    proxy: TcpListener,
    admin: TcpListener,
    tls: Option<TcpListener>,
    redirect: Option<TcpListener>,
}

impl Sockets {
    async fn bind(
        cfg: &Config,
        listen: SocketAddr,
        admin: SocketAddr,
        mut inherited: Inherited,
    ) -> Result<Sockets, ServeError> {
        let mut take = async |role: &'static str, addr: SocketAddr| match inherited.remove(role) {
            Some(l) => TcpListener::from_std(l).map_err(bind_error(role, addr)),
            None => TcpListener::bind(addr).await.map_err(bind_error(role, addr)),
        };
        let proxy = take(role::PROXY, listen).await?;
        let admin = take(role::ADMIN, admin).await?;
        let tls = match cfg.listen.tls_address {
            Some(a) => Some(take(role::TLS, a).await?),
            None => None,
        };
        let redirect = match cfg.listen.redirect_address {
            Some(a) => Some(take(role::REDIRECT, a).await?),
            None => None,
        };
        // A socket the new config no longer listens on is closed here (dropped).
        Ok(Sockets { proxy, admin, tls, redirect })
    }

    fn fds(&self) -> Vec<(&'static str, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        let mut v = vec![(role::PROXY, self.proxy.as_raw_fd()), (role::ADMIN, self.admin.as_raw_fd())];
        v.extend(self.tls.as_ref().map(|l| (role::TLS, l.as_raw_fd())));
        v.extend(self.redirect.as_ref().map(|l| (role::REDIRECT, l.as_raw_fd())));
        v
    }
}

/// Starts the listeners for an already-built [`Shared`] (tests use this with a
/// test origin, and `[vendors] resolve` + `ca_file` for their vendor sinks).
pub async fn start_with(
    shared: Arc<Shared>,
    listen: SocketAddr,
    admin: SocketAddr,
    grace: Duration,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    demo_addr: Option<SocketAddr>,
) -> Result<Running, ServeError> {
    let sockets = Sockets::bind(&shared.config, listen, admin, Inherited::default()).await?;
    start_sockets(shared, sockets, grace, shutdown_tx, shutdown_rx, demo_addr).await
}

async fn start_sockets(
    shared: Arc<Shared>,
    sockets: Sockets,
    grace: Duration,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    demo_addr: Option<SocketAddr>,
) -> Result<Running, ServeError> {
    let fds = sockets.fds();
    let local = |l: &TcpListener, what| l.local_addr().map_err(bind_error(what, SocketAddr::from(([0, 0, 0, 0], 0))));
    let proxy_addr = local(&sockets.proxy, role::PROXY)?;
    let admin_addr = local(&sockets.admin, role::ADMIN)?;
    let tls_addr = sockets.tls.as_ref().map(|l| local(l, role::TLS)).transpose()?;
    let redirect_addr = sockets.redirect.as_ref().map(|l| local(l, role::REDIRECT)).transpose()?;

    let certs = match &shared.config.tls {
        Some(tls) => {
            let store = CertStore::load(tls, shared.metrics.clone())?;
            tokio::spawn(store.clone().watch(shutdown_rx.clone()));
            Some(store)
        }
        None => None,
    };
    let warden = Warden::new(shared.clone());
    let caps = crate::proxy::server::caps_for(&warden);
    if let (Some(l), Some(store)) = (sockets.redirect, &certs) {
        let listen = &shared.config.listen;
        let app = Arc::new(HttpServer::new_app(Redirect::new(store.clone(), listen.redirect_https_port)));
        tokio::spawn(serve_app_capped(l, app, shutdown_rx.clone(), grace, Some(caps.clone()), None));
    }
    let tls = match (sockets.tls, &certs) {
        (Some(l), Some(store)) => {
            let config =
                store.server_config(shared.config.http2.enabled).map_err(|e| ServeError::TlsConfig(e.to_string()))?;
            Some((l, Arc::new(TlsAcceptor::new(config))))
        }
        _ => None,
    };

    let admin_app = Arc::new(HttpServer::new_app(Admin::new(shared.clone())));
    tokio::spawn(serve_app(sockets.admin, admin_app, shutdown_rx.clone(), grace));
    tokio::spawn(crate::reload::watch_rules(
        shared.config.rules.clone(),
        shared.clone(),
        Duration::from_secs(2),
        shutdown_rx.clone(),
    ));
    let listeners = ProxyListeners { plain: sockets.proxy, tls };
    let done = tokio::spawn(crate::proxy::server::run(listeners, warden, shutdown_rx, grace));
    Ok(Running {
        proxy_addr,
        admin_addr,
        tls_addr,
        redirect_addr,
        sockets: fds,
        demo_addr,
        shared,
        shutdown: shutdown_tx,
        done,
    })
}

/// Sends the listening sockets to the process waiting in `serve --upgrade`;
/// whether it took them. With `successor` (the pid we started), systemd is told
/// it is the main process now, before this one starts draining and exits.
async fn hand_over(running: &Running, successor: Option<u32>) -> bool {
    let (path, fds) = (running.shared.config.listen.upgrade_socket.clone(), running.sockets.clone());
    let sent = tokio::task::spawn_blocking(move || crate::handoff::send(&path, &fds))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match sent {
        Ok(_) => {
            if let Some(pid) = successor {
                crate::handoff::notify(&format!("MAINPID={pid}\n"));
            }
            tracing::info!("listening sockets handed to the new process; draining");
            true
        }
        Err(error) => {
            tracing::error!(%error, "upgrade hand-off failed; still serving");
            false
        }
    }
}

/// Runs until SIGTERM/SIGINT, printing where to look.
pub fn main(o: Overrides) -> std::process::ExitCode {
    crate::telemetry::init();
    let cfg = match effective_config(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // TAGWARDEN_THREADS pins the worker count (benchmarks compare one worker each); default: one per core.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("TAGWARDEN_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let inherited = if o.upgrade {
            let path = cfg.listen.upgrade_socket.clone();
            match tokio::task::spawn_blocking(move || crate::handoff::receive(&path)).await {
                Ok(Ok(sockets)) => sockets,
                Ok(Err(e)) => {
                    eprintln!("{e}");
                    return std::process::ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("upgrade: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        } else {
            Inherited::default()
        };
        let running = match start_inheriting(cfg, inherited).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let p = running.proxy_addr;
        let a = running.admin_addr;
        match running.demo_addr {
            Some(_) => {
                println!("tagwarden is proxying the built-in demo clinic site.");
                println!("  open   http://{p}/                      (index)");
                println!("         http://{p}/conditions/diabetes   (Meta Pixel, gtag, Hotjar, Intercom: removed)");
                println!("         http://{p}/appointments          (Zendesk widget: served first-party)");
                println!("  try    curl -s http://{p}/conditions/diabetes | grep -cE 'facebook|googletagmanager|hotjar|intercom'   # 0");
                println!("         curl -s http://{p}/appointments | grep -o '/_tw/zendesk/[^\"]*'");
                println!("  metrics http://{a}/metrics   health http://{a}/healthz");
            }
            None => println!("tagwarden listening on http://{p}/ (admin http://{a}/metrics)"),
        }
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut quit = signal(SignalKind::quit()).ok();
        let mut usr2 = signal(SignalKind::user_defined2()).ok();
        crate::handoff::notify(&format!("READY=1\nMAINPID={}\n", std::process::id()));
        let handed_over = loop {
            tokio::select! {
                _ = crate::reload::next_signal(&mut term) => break false,
                _ = tokio::signal::ctrl_c() => break false,
                // Upgrade: a new process waits in `serve --upgrade` (SIGQUIT), or we start it
                // (SIGUSR2: the binary at the same path, same arguments). Hand it the sockets,
                // then drain like SIGTERM. If nobody takes them, keep serving: a stray signal
                // must not take the site down.
                _ = crate::reload::next_signal(&mut quit) => {
                    if hand_over(&running, None).await {
                        break true;
                    }
                }
                _ = crate::reload::next_signal(&mut usr2) => {
                    match crate::handoff::spawn_successor() {
                        Ok(child) => {
                            if hand_over(&running, Some(child.id())).await {
                                break true;
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "upgrade: cannot start the new binary; still serving"),
                    }
                }
            }
        };
        tracing::info!("shutting down: draining in-flight requests");
        if !handed_over {
            crate::handoff::notify("STOPPING=1\n");
        }
        let _ = running.shutdown.send(true);
        let _ = running.done.await;
        std::process::ExitCode::SUCCESS
    })
}
