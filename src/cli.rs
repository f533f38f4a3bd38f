//! The command line: `tagwarden check`, `tagwarden rewrite`, `tagwarden diff`, `tagwarden serve`.

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
        /// Zero-downtime upgrade: take the listening sockets from the running
        /// process (send it SIGQUIT) over `[listen] upgrade_socket`.
        #[arg(long)]
        upgrade: bool,
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
    /// Preview a rule change on saved pages: every construct whose decision changes,
    /// and the CSP directives that change; a summary line. Exit 0, or 1 on errors.
    Diff {
        /// The rules in force (site.toml + vendors/).
        #[arg(long)]
        from: PathBuf,
        /// The changed rules.
        #[arg(long)]
        to: PathBuf,
        /// The pages' URL (default: each page's canonical link or og:url).
        #[arg(long)]
        url: Option<String>,
        /// One JSON document on stdout instead of text (`pages`: the changed ones; `summary`).
        #[arg(long)]
        json: bool,
        /// HTML files, or directories of them (`*.html`, `*.htm`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
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
        Some(Command::Diff { from, to, url, json, paths }) => diff(&from, &to, url.as_deref(), json, &paths),
        Some(Command::Serve { config, listen, upstream, admin, rules, upgrade }) => {
            crate::serve::main(crate::serve::Overrides { config, listen, upstream, admin, rules, upgrade })
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

/// Loads one rule set for `diff`, printing `check`'s located errors.
fn load_for_diff(dir: &std::path::Path, flag: &str) -> Option<Arc<crate::policy::Policy>> {
    match rules::load_dir(dir) {
        Ok(p) => Some(Arc::new(p)),
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("{} error(s) in {} ({flag})", errs.0.len(), dir.display());
            None
        }
    }
}

/// The pages under `paths`: files as given, directories' `*.html`/`*.htm` sorted.
fn page_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "html" || x == "htm"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn diff(from: &std::path::Path, to: &std::path::Path, url: Option<&str>, json: bool, paths: &[PathBuf]) -> ExitCode {
    let (old, new) = (load_for_diff(from, "--from"), load_for_diff(to, "--to"));
    let (Some(old), Some(new)) = (old, new) else { return ExitCode::FAILURE };
    let fixed_url = match url.map(url::Url::parse) {
        None => None,
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => Some(u),
        Some(_) => {
            eprintln!("--url must be an absolute http(s) URL");
            return ExitCode::FAILURE;
        }
    };
    let files = match page_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut errors, mut changed, mut constructs, mut directives) = (0usize, 0usize, 0usize, 0usize);
    let mut pages_json = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for file in &files {
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let result = std::fs::read(file).map_err(|e| e.to_string()).and_then(|html| {
            let page_url = fixed_url
                .clone()
                .or_else(|| crate::diff::canonical_url(&html))
                .ok_or("no --url and no absolute <link rel=canonical> or og:url")?;
            crate::diff::page(&old, &new, &page_url, &html).map(|d| (page_url, d))
        });
        let (page_url, page) = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                errors += 1;
                continue;
            }
        };
        if !page.is_empty() {
            changed += 1;
        }
        constructs += page.constructs_changed();
        directives += page.csp.len();
        if json {
            if !page.is_empty() {
                pages_json.push(crate::diff::page_json(&name, &page_url, &page));
            }
        } else if write!(stdout, "{}", crate::diff::render_page(&name, &page_url, &page)).is_err() {
            return ExitCode::FAILURE;
        }
    }
    let written = if json {
        let doc = serde_json::json!({
            "pages": pages_json,
            "summary": {"pages": files.len(), "pages_changed": changed, "constructs_changed": constructs,
                        "csp_directives_changed": directives, "errors": errors},
        });
        writeln!(stdout, "{doc}")
    } else {
        writeln!(
            stdout,
            "summary: {} pages, {changed} changed, {constructs} constructs change decision, {directives} CSP directives change, {errors} errors",
            files.len()
        )
    };
    if written.is_err() || errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
