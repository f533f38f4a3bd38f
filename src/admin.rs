//! The admin listener: `/metrics` (Prometheus), `/healthz`, `/readyz`,
//! `/rules` (site, version, vendors, routes) and `/inventory` (the third parties
//! pages referenced and the first-party vendor asset hashes, JSON; see
//! [`crate::inventory`]). A pingora `ServeHttp` app on the
//! same accept loop as the proxy; loopback by default so metrics are not
//! exposed by accident.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Listener;
use crate::proxy::Shared;
use crate::respond::{response, text};

/// The admin app over the proxy's shared state.
#[derive(Debug)]
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    pub fn new(shared: Arc<Shared>) -> Admin {
        Admin { shared }
    }

    /// Answers one admin request by method and path.
    pub fn answer(&self, method: &str, path: &str) -> Response<Vec<u8>> {
        let shared = &self.shared;
        match (method, path) {
            ("GET" | "HEAD", "/metrics") => {
                response(200, "text/plain; version=0.0.4; charset=utf-8", shared.metrics.render())
            }
            ("GET" | "HEAD", "/healthz") => text(200, "ok\n"),
            ("GET" | "HEAD", "/inventory") => {
                response(200, "application/json", shared.evidence.inventory.to_json().to_string())
            }
            ("GET" | "HEAD", "/readyz") => text(200, "ready\n"),
            ("GET" | "HEAD", "/rules") => {
                let p = shared.policy.load();
                let body = serde_json::json!({
                    "site": p.site_name,
                    "version": p.version,
                    "vendors": p.vendors.iter().map(|v| &v.id).collect::<Vec<_>>(),
                    "routes": p.routes.iter().map(|r| serde_json::json!({
                        "path": r.pattern,
                        "allow": r.allow.iter().map(|i| &p.vendors[*i].id).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                });
                response(200, "application/json", body.to_string())
            }
            (_, "/metrics" | "/healthz" | "/readyz" | "/rules" | "/inventory") => text(405, "method not allowed\n"),
            _ => text(404, "not found\n"),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let resp = self.answer(req.method.as_str(), req.uri.path());
        self.shared.metrics.request(Listener::Admin, resp.status().as_u16(), None);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::proxy::Origin;

    fn admin() -> Admin {
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = crate::rules::load_dir(&rules).unwrap();
        let origin = Origin::plain(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        Admin::new(Arc::new(Shared::new(policy, Config::default(), origin).unwrap()))
    }

    #[test]
    fn metrics_are_served_with_their_length_and_the_prometheus_type() {
        let r = admin().answer("GET", "/metrics");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(r.headers()["content-length"], r.body().len().to_string().as_str());
        assert!(String::from_utf8_lossy(r.body()).contains("tagwarden_rules_info"));
    }

    #[test]
    fn the_inventory_is_json_with_entries_other_and_assets() {
        let a = admin();
        let r = a.answer("GET", "/inventory");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(json["max_entries"], 1000);
        assert!(json["entries"].as_array().unwrap().is_empty() && json["assets"].as_array().unwrap().is_empty());
        assert_eq!(json["other"]["count"], 0);
    }

    #[test]
    fn other_methods_are_405_and_other_paths_404() {
        let a = admin();
        assert_eq!(a.answer("POST", "/metrics").status(), 405);
        assert_eq!(a.answer("POST", "/inventory").status(), 405);
        assert_eq!(a.answer("GET", "/nothing").status(), 404);
        assert_eq!(a.answer("GET", "/rules").headers()["content-type"], "application/json");
    }
}
