//! The command line: `tagwarden check`, `tagwarden rewrite`, `tagwarden serve`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::policy::ConsentSet;
use crate::rewrite::rewrite_document;
use crate::rules;

/// tagwarden — keeps unvetted third parties off your HTML.
#[derive(Debug, Parser)]
#[command(name = "tagwarden", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default). Without an upstream it proxies the built-in demo clinic.
    Serve {
        /// Server config file (TOML); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Proxy listen address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Origin URL, e.g. https://origin.internal:8443 (default: the built-in demo).
        #[arg(long)]
        upstream: Option<String>,
        /// Admin listen address (default 127.0.0.1:9901).
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        /// Rules directory (default rules/).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Validate the rule files; print a summary line, or `file:line:col: message` errors.
    Check {
        /// Rules directory (site.toml + vendors/).
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
    /// Rewrite one HTML document from stdin to stdout.
    Rewrite {
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// The page's URL (decides first-party hosts and the route).
        #[arg(long)]
        url: String,
        /// Granted consent categories, comma separated (default: the site's default).
        #[arg(long)]
        consent: Option<String>,
        /// Character encoding of the input (default: BOM, then `<meta charset>`, then UTF-8).
        #[arg(long)]
        charset: Option<String>,
        /// Write one JSON finding per line to stderr.
        #[arg(long)]
        explain: bool,
    },
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { rules }) => check(&rules),
        Some(Command::Rewrite { rules, url, consent, charset, explain }) => {
            rewrite(&rules, &url, consent.as_deref(), charset.as_deref(), explain)
        }
        Some(Command::Serve { config, listen, upstream, admin, rules }) => {
            crate::serve::main(crate::serve::Overrides { config, listen, upstream, admin, rules })
        }
        None => crate::serve::main(crate::serve::Overrides::default()),
    }
}

fn check(dir: &std::path::Path) -> ExitCode {
    match rules::load_dir(dir) {
        Ok(p) => {
            println!(
                "ok: site {} — {} vendors, {} routes, rules version {}",
                p.site_name,
                p.vendors.len(),
                p.routes.len(),
                p.version
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("{} error(s) in {}", errs.0.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

fn rewrite(dir: &std::path::Path, url: &str, consent: Option<&str>, charset: Option<&str>, explain: bool) -> ExitCode {
    let policy = match rules::load_dir(dir) {
        Ok(p) => Arc::new(p),
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::FAILURE;
        }
    };
    let page_url = match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            eprintln!("--url must be an absolute http(s) URL");
            return ExitCode::from(2);
        }
    };
    let consent = consent.map_or(policy.consent_default, ConsentSet::parse_list);
    let page = policy.page(&page_url, consent);
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    match rewrite_document(&policy, &page, &input, charset) {
        Ok((out, findings)) => {
            if explain {
                let mut err = std::io::stderr().lock();
                for f in &findings {
                    let _ = writeln!(err, "{}", f.to_json());
                }
            }
            if std::io::stdout().lock().write_all(&out).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rewrite failed ({}): {e}", e.kind());
            ExitCode::FAILURE
        }
    }
}
