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
use crate::proxy::server::serve_app;
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
    start_with(shared, cfg.listen.address, cfg.admin.address, grace, shutdown_tx, shutdown_rx, demo_addr).await
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
    let proxy_l = TcpListener::bind(listen).await.map_err(bind_error("listen", listen))?;
    let admin_l = TcpListener::bind(admin).await.map_err(bind_error("admin", admin))?;
    let proxy_addr = proxy_l.local_addr().map_err(bind_error("listen", listen))?;
    let admin_addr = admin_l.local_addr().map_err(bind_error("admin", admin))?;

    let admin_app = Arc::new(HttpServer::new_app(Admin::new(shared.clone())));
    tokio::spawn(serve_app(admin_l, admin_app, shutdown_rx.clone(), grace));
    tokio::spawn(crate::reload::watch_rules(
        shared.config.rules.clone(),
        shared.clone(),
        Duration::from_secs(2),
        shutdown_rx.clone(),
    ));
    let warden = Warden::new(shared.clone());
    let done = tokio::spawn(crate::proxy::server::run(proxy_l, warden, shutdown_rx, grace));
    Ok(Running { proxy_addr, admin_addr, demo_addr, shared, shutdown: shutdown_tx, done })
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
        let running = match start(cfg).await {
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = crate::reload::next_signal(&mut term) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: draining in-flight requests");
        let _ = running.shutdown.send(true);
        let _ = running.done.await;
        std::process::ExitCode::SUCCESS
    })
}
