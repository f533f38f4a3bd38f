//! Logging: `tracing` with structured fields (JSON when `TAGWARDEN_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info`, pingora's own chatter at `warn`).
//! pingora logs through the `log` crate; tracing-subscriber bridges it.
//! Log lines never carry paths, queries, cookies or bodies: requests are logged
//! by route glob.

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let json = std::env::var("TAGWARDEN_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
