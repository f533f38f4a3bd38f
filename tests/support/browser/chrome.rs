//! Debian's headless Chromium, launched once with a fresh profile and driven
//! over the DevTools protocol: one new target per page load, every request the
//! page (and any frame or worker it starts) attempts recorded from
//! `Network.requestWillBeSent` and `Network.webSocketCreated`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::cdp::{Cdp, Event};

/// The browser binary (Debian's `chromium` package; CI installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every run uses. `--host-resolver-rules` maps every host name to
/// loopback: the page's own host reaches tagwarden on its port, any
/// third-party URL on a default port lands on a sink.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--no-default-browser-check",
    "--disable-features=OptimizationHints,MediaRouter,Translate,InterestFeedContentSuggestions,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--remote-debugging-port=0",
    "--host-resolver-rules=MAP * 127.0.0.1",
];

/// How long the browser may take to write `DevToolsActivePort` (hang guard).
const STARTUP_GUARD: Duration = Duration::from_secs(30);

/// What one page load attempted.
#[derive(Debug, Default, Clone)]
pub struct PageLoad {
    /// Every `Network.requestWillBeSent` (redirect hops included), in order.
    pub requests: Vec<Request>,
    /// Every `Network.webSocketCreated` URL.
    pub websockets: Vec<String>,
    pub load_event: bool,
    /// `Page.navigate`'s `errorText`, if the navigation itself failed.
    pub nav_error: Option<String>,
    /// The per-page cap was reached before the page went quiet.
    pub capped: bool,
    /// Child targets (out-of-process frames, workers) that were attached.
    pub children: Vec<String>,
    /// The top-level document as the browser received it (after tagwarden).
    pub document: Option<String>,
    /// The top-level document's response headers (`Network.responseReceived`),
    /// names lower-cased.
    pub document_headers: Vec<(String, String)>,
    /// `Runtime.evaluate` of each expression asked for, in the page after it
    /// went quiet: the value (by value) or the exception / protocol error.
    pub evaluated: Vec<(String, Result<Value, String>)>,
}

impl PageLoad {
    /// The document's response header `name` (lower case), if sent.
    pub fn document_header(&self, name: &str) -> Option<&str> {
        self.document_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value `expression` evaluated to, if it was asked for.
    pub fn evaluated(&self, expression: &str) -> Option<&Result<Value, String>> {
        self.evaluated.iter().find(|(e, _)| e == expression).map(|(_, r)| r)
    }
}

/// One request the page (or a frame or worker of it) attempted.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    /// `Network.loadingFailed`'s `blockedReason` (`csp`, `mixed-content`, …):
    /// the browser itself refused it, so nothing left the browser.
    pub blocked: Option<String>,
    /// `Network.loadingFailed`'s `errorText`, when it failed without being blocked.
    pub error: Option<String>,
    /// `initiator.type`: `parser`, `script`, `preload`, `other`, …
    pub initiator: String,
    /// `request.method`.
    pub method: String,
    /// `type` (`Document`, `Script`, `CSPViolationReport`, …).
    pub resource_type: String,
    /// The request body (`request.postData`, or `Network.getRequestPostData`
    /// afterwards for CSP violation reports that did not carry it inline).
    pub post_data: Option<String>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.method != "GET" {
            write!(f, "{} ", self.method)?;
        }
        write!(f, "{}  ({}, {})", self.url, self.initiator, self.resource_type)?;
        match (&self.blocked, &self.error) {
            (Some(b), _) => write!(f, "  [blocked:{b}]"),
            (None, Some(e)) => write!(f, "  [{e}]"),
            (None, None) => Ok(()),
        }
    }
}

/// Bounded waits for one page load (not timing assertions).
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// The page counts as done after its load event plus this long without a
    /// new network event (or sink connection).
    pub quiet: Duration,
    /// Upper bound for one page.
    pub cap: Duration,
}

/// How [`Browser::load`] drives one page (its arguments, passed on together).
#[derive(Clone, Copy)]
struct How<'a> {
    javascript: bool,
    waits: Waits,
    activity: &'a dyn Fn() -> Option<Instant>,
    evaluate: &'a [&'a str],
}

#[derive(Debug)]
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    stderr_path: PathBuf,
    pub cdp: Cdp,
}

impl Browser {
    pub async fn launch() -> Result<Browser, String> {
        if !std::path::Path::new(CHROMIUM).exists() {
            return Err(format!("{CHROMIUM} is missing: install Debian's `chromium` package (CI does)"));
        }
        let profile = tempfile::Builder::new()
            .prefix("tagwarden-chromium-")
            .tempdir()
            .map_err(|e| format!("profile dir: {e}"))?;
        let stderr_path = profile.path().with_extension("stderr.txt");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        let mut cmd = Command::new(CHROMIUM);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {CHROMIUM}: {e}"))?;
        let port_file = profile.path().join("DevToolsActivePort");
        let connected = async {
            let deadline = Instant::now() + STARTUP_GUARD;
            let (port, path) = loop {
                if let Ok(text) = std::fs::read_to_string(&port_file) {
                    let mut lines = text.lines();
                    if let (Some(port), Some(path)) = (lines.next(), lines.next())
                        && let Ok(port) = port.trim().parse::<u16>()
                    {
                        break (port, path.trim().to_string());
                    }
                }
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("chromium exited at start-up ({status}):\n{}", tail(&stderr_path)));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "chromium wrote no DevToolsActivePort within {STARTUP_GUARD:?}:\n{}",
                        tail(&stderr_path)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            Cdp::connect(SocketAddr::from(([127, 0, 0, 1], port)), &path).await
        }
        .await;
        let setup = match connected {
            Ok(cdp) => Browser::setup(&cdp).await.map(|()| cdp),
            Err(e) => Err(e),
        };
        match setup {
            Ok(cdp) => Ok(Browser { child, _profile: profile, stderr_path, cdp }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Browser-wide settings, once.
    async fn setup(cdp: &Cdp) -> Result<(), String> {
        // The test's TLS front (for HSTS-preloaded site hosts) has a throwaway
        // self-signed certificate. Sinks never complete a handshake either way.
        cdp.call("Security.setIgnoreCertificateErrors", json!({ "ignore": true }), None).await?;
        // Targets not tied to one page — shared workers, service workers —
        // start paused and are attached here, so their requests are logged too
        // (pages are attached one by one in `load`).
        cdp.call(
            "Target.setAutoAttach",
            json!({
                "autoAttach": true,
                "waitForDebuggerOnStart": true,
                "flatten": true,
                "filter": [
                    { "type": "page", "exclude": true },
                    { "type": "tab", "exclude": true },
                    { "type": "browser", "exclude": true },
                    {}
                ],
            }),
            None,
        )
        .await?;
        Ok(())
    }

    /// The last lines chromium wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr_path)
    }

    pub async fn version(&self) -> String {
        match self.cdp.call("Browser.getVersion", json!({}), None).await {
            Ok(v) => v.get("product").and_then(Value::as_str).unwrap_or("?").to_string(),
            Err(e) => format!("? ({e})"),
        }
    }

    /// Loads `url` in a new target with JavaScript on or off; `activity`
    /// returns the time of the last sink connection, so a page only counts as
    /// quiet when neither the browser nor the sinks saw anything new. Each of
    /// `evaluate` is evaluated in the page once it went quiet (DevTools
    /// evaluation, which runs even with page scripts disabled).
    pub async fn load(
        &self,
        url: &str,
        javascript: bool,
        waits: Waits,
        activity: &dyn Fn() -> Option<Instant>,
        evaluate: &[&str],
    ) -> Result<PageLoad, String> {
        let cdp = &self.cdp;
        cdp.drain_events().await;
        let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" }), None).await?;
        let target_id = str_field(&target, "targetId")?;
        let attached =
            cdp.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }), None).await?;
        let main = str_field(&attached, "sessionId")?;
        let how = How { javascript, waits, activity, evaluate };
        let result = self.drive(&target_id, &main, url, &how).await;
        // Closing is best effort; the next page gets a fresh target either way.
        let _ = cdp.call("Target.closeTarget", json!({ "targetId": target_id }), None).await;
        result
    }

    async fn prepare(&self, session: &str, javascript: bool, frame: bool) -> Result<(), String> {
        let cdp = &self.cdp;
        cdp.call("Network.enable", json!({}), Some(session)).await?;
        cdp.call("Network.setCacheDisabled", json!({ "cacheDisabled": true }), Some(session)).await?;
        if frame {
            cdp.call("Page.enable", json!({}), Some(session)).await?;
            if !javascript {
                cdp.call("Emulation.setScriptExecutionDisabled", json!({ "value": true }), Some(session)).await?;
            }
        }
        cdp.call(
            "Target.setAutoAttach",
            json!({ "autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true }),
            Some(session),
        )
        .await?;
        Ok(())
    }

    async fn drive(&self, target_id: &str, main: &str, url: &str, how: &How<'_>) -> Result<PageLoad, String> {
        let How { javascript, waits, activity, evaluate } = *how;
        let cdp = &self.cdp;
        self.prepare(main, javascript, true).await?;
        let mut sessions: HashSet<String> = HashSet::from([main.to_string()]);
        let mut log = PageLoad::default();
        let started = Instant::now();
        let cap = started + waits.cap;
        let nav = cdp.call("Page.navigate", json!({ "url": url }), Some(main)).await?;
        if let Some(e) = nav.get("errorText").and_then(Value::as_str) {
            log.nav_error = Some(e.to_string());
        }
        let mut last = Instant::now();
        let mut document_request: Option<String> = None;
        let mut by_id: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
        // Requests with a body DevTools did not include: (session, request id, index).
        let mut body_later: Vec<(String, String, usize)> = Vec::new();
        loop {
            let now = Instant::now();
            let quiet_until = last.max(activity().unwrap_or(last)) + waits.quiet;
            let done = log.load_event || log.nav_error.is_some();
            if done && now >= quiet_until {
                break;
            }
            if now >= cap {
                log.capped = true;
                break;
            }
            let wake = if done { quiet_until.min(cap) } else { cap };
            let Some(ev) = cdp.next_event(wake).await else { continue };
            let Event { method, params, session } = ev;
            // Browser-level auto-attach (shared and service workers) reports
            // without a session; pages run one at a time, so it is this page's.
            let browser_level = session.is_none() && method == "Target.attachedToTarget";
            let Some(session) = session.filter(|s| sessions.contains(s)).or(browser_level.then(String::new)) else {
                continue;
            };
            match method.as_str() {
                "Network.requestWillBeSent" => {
                    last = Instant::now();
                    if let Some(u) = params.pointer("/request/url").and_then(Value::as_str) {
                        // A redirect hop reuses the request id: the id names the latest hop.
                        if let Some(id) = params.get("requestId").and_then(Value::as_str) {
                            by_id.insert((session.clone(), id.to_string()), log.requests.len());
                        }
                        let initiator =
                            params.pointer("/initiator/type").and_then(Value::as_str).unwrap_or("?").to_string();
                        let field = |p: &str| params.pointer(p).and_then(Value::as_str).map(str::to_string);
                        let post_data = field("/request/postData");
                        let resource_type = field("/type").unwrap_or_else(|| "?".into());
                        if post_data.is_none()
                            && params.pointer("/request/hasPostData").and_then(Value::as_bool) == Some(true)
                            && let Some(id) = field("/requestId")
                        {
                            body_later.push((session.clone(), id, log.requests.len()));
                        }
                        log.requests.push(Request {
                            url: u.to_string(),
                            blocked: None,
                            error: None,
                            initiator,
                            method: field("/request/method").unwrap_or_else(|| "?".into()),
                            resource_type,
                            post_data,
                        });
                    }
                    if session == main
                        && document_request.is_none()
                        && params.get("type").and_then(Value::as_str) == Some("Document")
                    {
                        document_request = params.get("requestId").and_then(Value::as_str).map(str::to_string);
                    }
                }
                "Network.webSocketCreated" => {
                    last = Instant::now();
                    if let Some(u) = params.get("url").and_then(Value::as_str) {
                        log.websockets.push(u.to_string());
                    }
                }
                "Network.responseReceived"
                    if session == main
                        && document_request.is_some()
                        && params.get("requestId").and_then(Value::as_str) == document_request.as_deref() =>
                {
                    last = Instant::now();
                    if let Some(h) = params.pointer("/response/headers").and_then(Value::as_object) {
                        log.document_headers = h
                            .iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_string()))
                            .collect();
                    }
                }
                "Network.loadingFailed" => {
                    last = Instant::now();
                    let id = params.get("requestId").and_then(Value::as_str).unwrap_or_default().to_string();
                    if let Some(r) = by_id.get(&(session.clone(), id)).and_then(|&i| log.requests.get_mut(i)) {
                        r.blocked = params.get("blockedReason").and_then(Value::as_str).map(str::to_string);
                        r.error = params.get("errorText").and_then(Value::as_str).map(str::to_string);
                    }
                }
                m if m.starts_with("Network.") => last = Instant::now(),
                "Page.loadEventFired" if session == main => {
                    log.load_event = true;
                    last = Instant::now();
                }
                "Target.attachedToTarget" => {
                    let child = params.get("sessionId").and_then(Value::as_str).unwrap_or_default().to_string();
                    let kind = params.pointer("/targetInfo/type").and_then(Value::as_str).unwrap_or("?").to_string();
                    let turl = params.pointer("/targetInfo/url").and_then(Value::as_str).unwrap_or("").to_string();
                    let tid = params.pointer("/targetInfo/targetId").and_then(Value::as_str).unwrap_or("");
                    if session.is_empty() && tid == target_id {
                        // The browser-wide auto-attach also reports this page (its type
                        // filter does not keep pages out): release it, enable nothing on it
                        // (its events would be duplicates). Detaching it is no option: a
                        // detaching session resets the page's emulation — JavaScript
                        // would be switched back on.
                        let _ = cdp.call("Runtime.runIfWaitingForDebugger", json!({}), Some(&child)).await;
                        continue;
                    }
                    log.children.push(format!(
                        "{kind} {turl} (attached via the {})",
                        if session.is_empty() { "browser" } else { "page" }
                    ));
                    sessions.insert(child.clone());
                    let frame = kind == "iframe" || kind == "page";
                    // A child that refuses a domain (some worker kinds) is still released.
                    let _ = self.prepare(&child, javascript, frame).await;
                    let _ = cdp.call("Runtime.runIfWaitingForDebugger", json!({}), Some(&child)).await;
                    last = Instant::now();
                }
                _ => {}
            }
        }
        for expression in evaluate {
            let r = cdp
                .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }), Some(main))
                .await
                .and_then(|v| match v.get("exceptionDetails") {
                    Some(e) => Err(format!("exception: {e}")),
                    None => Ok(v.pointer("/result/value").cloned().unwrap_or(Value::Null)),
                });
            log.evaluated.push(((*expression).to_string(), r));
        }
        for (session, id, i) in body_later {
            if let Ok(v) = cdp.call("Network.getRequestPostData", json!({ "requestId": id }), Some(&session)).await
                && let Some(r) = log.requests.get_mut(i)
            {
                r.post_data = v.get("postData").and_then(Value::as_str).map(str::to_string);
            }
        }
        if let Some(id) = document_request
            && let Ok(body) = cdp.call("Network.getResponseBody", json!({ "requestId": id }), Some(main)).await
            && body.get("base64Encoded").and_then(Value::as_bool) == Some(false)
        {
            log.document = body.get("body").and_then(Value::as_str).map(str::to_string);
        }
        Ok(log)
    }

    /// Closes the browser (politely, then by its process id).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.cdp.call("Browser.close", json!({}), None)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn str_field(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("no {key} in {v}"))
}
