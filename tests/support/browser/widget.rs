//! The allowed support widget, end to end: on the demo's `/appointments` page
//! (Zendesk's documented snippet) the demo vendor's mock widget — loader →
//! compose JSON from a hard-coded host → src-less iframe → config from a bare
//! host in JSON → chunk from a hard-coded base → stylesheet with `@font-face` →
//! ticket POST → WebSocket whose host comes from config and whose messages name
//! an image — must reach its ready state in Chromium through tagwarden with
//! the shipped rules, while the vendor is told nothing it does not need.
//!
//! Checked here: the widget's own signals (ready, the ticket id, the chat round
//! trip); what the vendor received (every request of the page, from the demo
//! vendor's log): no Cookie, Referer, Origin, client IP or forwarding header,
//! no page path, title or session value anywhere (target, headers, body,
//! WebSocket frames), no telemetry (`/embeddable_blip`); and no CSP refusal and
//! no report caused by the widget. "Nothing connects to a vendor host from the
//! browser" is the suite's general check (sinks and DevTools) for every page.

use tagwarden::demo::vendor::VendorRequest;

use crate::{Outcome, Verdict};

/// Evaluated in the page once it went quiet.
pub const READY: &str = "document.documentElement.dataset.widget";
pub const TICKET: &str = "document.documentElement.dataset.ticket";
pub const CHAT: &str = "document.documentElement.dataset.chat";
pub const ERROR: &str = "document.documentElement.dataset.widgetError";
pub const EVALUATE: &[&str] = &[READY, TICKET, CHAT, ERROR];
pub const INTERCOM: &str = "document.documentElement.dataset.intercom";
pub const INTERCOM_ERROR: &str = "document.documentElement.dataset.intercomError";
pub const INTERCOM_EVALUATE: &[&str] = &[INTERCOM, INTERCOM_ERROR];

/// The Intercom-like shape's page (served by the suite's origin at
/// [`INTERCOM_PATH`], on a route the suite adds that allows `intercom`).
pub const INTERCOM_PATH: &str = "/widget/intercom";
pub const INTERCOM_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>My insulin prescriptions</title></head>
<body>
<h1>Prescriptions</h1>
<script>window.intercomSettings = { app_id: "demoapp" };</script>
<script src="https://widget.intercom.io/widget/demoapp"></script>
</body>
</html>
"#;

/// The route the suite adds for [`INTERCOM_PATH`].
pub const INTERCOM_ROUTE: &str = r#"[[route]]
path = "/widget/intercom"
allow = ["zendesk", "intercom"]

"#;

/// What a page must not tell the vendor: its path, its title, the visitor's
/// session cookie value.
const ZENDESK_SECRETS: &[&str] = &["/appointments", "Book an appointment", "demo-patient-42"];
const INTERCOM_SECRETS: &[&str] = &["/widget/intercom", "insulin"];

const INTERCOM_EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "widget.intercom.io", "/widget/demoapp"),
    ("GET", "js.intercomcdn.com", "/frame-modern.js"),
    ("POST", "api-iam.intercom.io", "/messenger/web/ping"),
    ("GET", "nexus-websocket-a.intercom.io", "/pubsub/5-demo"),
];

/// Requests the widget makes, as the vendor must see them: (method, host, path prefix).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "static.zdassets.com", "/ekr/snippet.js"),
    ("GET", "ekr.zdassets.com", "/compose/"),
    ("GET", "static.zdassets.com", "/web_widget/latest/web_widget.js"),
    ("GET", "clinic.zendesk.com", "/embeddable/config"),
    ("GET", "static.zdassets.com", "/web_widget/latest/chunk-chat.js"),
    ("GET", "static.zdassets.com", "/web_widget/latest/widget.css"),
    ("POST", "clinic.zendesk.com", "/api/v2/requests.json"),
    ("GET", "widget-mediator.zendesk.com", "/ws"),
    ("GET", "static.zdassets.com", "/avatars/agent.png"),
];

const FORBIDDEN_HEADERS: &[&str] =
    &["cookie", "referer", "origin", "x-forwarded-for", "forwarded", "x-real-ip", "true-client-ip", "x-forwarded-host"];

pub fn judge(o: &Outcome, vendor: &[VendorRequest], v: &mut Verdict) {
    let s = &o.scenario;
    // The snippet itself is requested first-party with JavaScript off too (it is markup).
    if !s.javascript {
        return;
    }
    let Ok(load) = &o.load else { return };
    let value = |expr: &str| match load.evaluated(expr) {
        Some(Ok(serde_json::Value::String(x))) => Some(x.clone()),
        _ => None,
    };
    let chat = Some("agent: we got \"hello from the patient\"".to_string());
    let (want, expected, secrets, ws_host) = match s.path.as_str() {
        "/appointments" => (
            vec![
                (READY, Some("ready".to_string())),
                (TICKET, Some("201:4242".to_string())),
                (CHAT, chat),
                (ERROR, None),
            ],
            EXPECTED,
            ZENDESK_SECRETS,
            "widget-mediator.zendesk.com",
        ),
        INTERCOM_PATH => (
            vec![(INTERCOM, chat), (INTERCOM_ERROR, None)],
            INTERCOM_EXPECTED,
            INTERCOM_SECRETS,
            "nexus-websocket-a.intercom.io",
        ),
        _ => return,
    };
    for (expr, expected) in want {
        let got = value(expr);
        if got != expected {
            v.problems.push(format!("widget: {expr} is {got:?}, expected {expected:?}"));
        }
    }
    for (method, host, path) in expected {
        if !vendor.iter().any(|r| r.method == *method && r.host == *host && r.target.starts_with(path)) {
            v.problems.push(format!(
                "widget: the vendor never received {method} https://{host}{path}… (it got: {})",
                vendor.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let chat = vendor.iter().find(|r| r.host == ws_host);
    if !chat.is_some_and(|r| r.frames.iter().any(|f| f.contains("hello from the patient"))) {
        v.problems.push("widget: the chat message never reached the vendor through the WebSocket".into());
    }
    for r in vendor {
        if r.target.contains("embeddable_blip") {
            v.problems.push(format!("widget: telemetry reached the vendor: {r}"));
        }
        for h in FORBIDDEN_HEADERS {
            if let Some(value) = r.header(h) {
                v.problems.push(format!("widget: the vendor received `{h}: {value}` with {r}"));
            }
        }
        let mut seen = format!("{}\n", r.target);
        for (n, value) in &r.headers {
            seen.push_str(&format!("{n}: {value}\n"));
        }
        seen.push_str(&String::from_utf8_lossy(&r.body));
        for f in &r.frames {
            seen.push_str(f);
        }
        for secret in secrets {
            if seen.contains(secret) {
                v.problems.push(format!("widget: the vendor was told `{secret}` in {r}"));
            }
        }
        if r.headers.iter().any(|(n, value)| n != "host" && value.contains("127.0.0.1")) {
            v.problems.push(format!("widget: a client address reached the vendor in the headers of {r}"));
        }
    }
    // The widget runs under the CSP without a single refusal or report.
    for r in &load.requests {
        if let Some(reason) = &r.blocked {
            v.problems.push(format!("widget page: the browser refused {} ({reason})", r.url));
        }
    }
    for r in &v.sent_reports {
        v.problems.push(format!("widget page: CSP violation reported: {} blocked {}", r.directive, r.blocked));
    }
}
