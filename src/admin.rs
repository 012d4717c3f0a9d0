//! The admin listener: Kubernetes probes, a JSON health report and Prometheus metrics.
//! It runs on its own port so none of this is reachable through the public listener.
//!
//! - `/health/live`    200 while the process answers.
//! - `/health/startup` 200 once the first configuration is loaded and its first round of
//!   health checks is done.
//! - `/health/ready`   200 when a configuration is loaded, every upstream marked
//!   `critical` has at least one healthy peer and, when Redis is configured (and
//!   `readiness: required`, the default), Redis answers a PING within 2 s; 503 with the
//!   reasons otherwise.
//! - `/health`         the report: peers, breakers, rate-limit store, config version and
//!   hash, uptime.
//! - `/metrics`        Prometheus text format.

use crate::snapshot::Live;
use crate::telemetry::{self, metrics::METRICS};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long readiness waits for Redis to answer.
const REDIS_READY_WITHIN: Duration = Duration::from_secs(2);

pub struct AdminApp {
    live: Arc<Live>,
}

impl AdminApp {
    pub fn new(live: Arc<Live>) -> Self {
        AdminApp { live }
    }

    /// Why the gateway is not ready (empty when it is), and Redis's answer to a PING when
    /// Redis is configured.
    async fn readiness(&self) -> (Vec<String>, Option<Result<(), String>>) {
        let Some(snapshot) = self.live.current() else {
            return (vec!["no configuration loaded yet".to_string()], None);
        };
        let mut reasons: Vec<String> = snapshot
            .pools
            .iter()
            .filter(|pool| pool.spec.critical && pool.peer_counts().0 == 0)
            .map(|pool| format!("critical upstream {} has no healthy peer", pool.name()))
            .collect();
        let redis = match &snapshot.store {
            Some(store) => Some(store.ping(REDIS_READY_WITHIN).await),
            None => None,
        };
        let required = snapshot
            .config
            .rate_limiting
            .redis
            .as_ref()
            .is_some_and(|r| r.required_for_readiness);
        if let (Some(Err(_)), true) = (&redis, required) {
            reasons.push("the rate-limit store (Redis) does not answer within 2 s".to_string());
        }
        (reasons, redis)
    }

    async fn report(&self) -> serde_json::Value {
        let (reasons, redis) = self.readiness().await;
        let snapshot = self.live.current();
        let upstreams: serde_json::Map<String, serde_json::Value> = snapshot
            .iter()
            .flat_map(|s| s.pools.iter())
            .map(|pool| {
                let peers: Vec<_> = pool
                    .peers()
                    .into_iter()
                    .map(|(addr, ready)| json!({"address": addr.to_string(), "healthy": ready}))
                    .collect();
                let (healthy, total) = pool.peer_counts();
                (
                    pool.name().to_string(),
                    json!({
                        "critical": pool.spec.critical,
                        "healthy_peers": healthy,
                        "peers_total": total,
                        "peers": peers,
                        "circuit_breaker": pool.breaker_state().as_str(),
                    }),
                )
            })
            .collect();
        json!({
            "status": if reasons.is_empty() { "ready" } else { "not_ready" },
            "reasons": reasons,
            "build": {
                "version": telemetry::VERSION,
                "git_revision": telemetry::GIT_REVISION,
                "pingora_version": telemetry::PINGORA_VERSION,
            },
            "config": snapshot.as_ref().map(|s| json!({
                "version": s.version,
                "hash": s.config.hash,
                "routes": s.config.routes.len(),
                "upstreams": s.config.upstreams.len(),
            })),
            "uptime_seconds": self.live.uptime().as_secs(),
            "last_reload": self.live.reloads().last.map(|last| reload_json(&last)),
            "upstreams": upstreams,
            "rate_limiting": snapshot.as_ref().map(|s| json!({
                "store": if redis.is_some() { "redis" } else { "local" },
                "redis_reachable": redis.as_ref().map(Result::is_ok),
                "redis_error": redis.as_ref().and_then(|r| r.as_ref().err()),
                "fallback_active": s.store.as_ref().is_some_and(|store| store.is_down()),
                "local_buckets": s.limiter.local_buckets(),
            })),
        })
    }
}

impl AdminApp {
    /// What is running and how the last reload went: the version and hash in force, the
    /// file they came from and whether it still holds them, the last attempt.
    fn config_status(&self, snapshot: &crate::snapshot::Snapshot) -> serde_json::Value {
        let reloads = self.live.reloads();
        let on_disk = reloads.path.as_ref().map(|path| {
            crate::prepare::read_bounded(path)
                .map(|text| crate::config::content_hash(&text))
                .ok()
        });
        json!({
            "running": {
                "version": snapshot.version,
                "hash": snapshot.config.hash,
                "routes": snapshot.config.routes.len(),
                "upstreams": snapshot.config.upstreams.len(),
            },
            "file": reloads.path.as_ref().map(|p| p.display().to_string()),
            "file_hash": on_disk.clone().flatten(),
            "file_is_running": on_disk.flatten().map(|hash| hash == snapshot.config.hash),
            "last_reload": reloads.last.as_ref().map(reload_json),
        })
    }
}

fn reload_json(last: &crate::snapshot::ReloadAttempt) -> serde_json::Value {
    json!({
        "at": crate::telemetry::access_log::rfc3339(last.at),
        "result": last.result,
        "errors": last.errors,
        "took_ms": last.took.as_secs_f64() * 1e3,
    })
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/health/live" => reply(200, json!({"status": "alive"})),
            "/health/startup" if self.live.startup_complete() => {
                reply(200, json!({"status": "started"}))
            }
            "/health/startup" => reply(503, json!({"status": "starting"})),
            "/health/ready" => {
                let (reasons, _) = self.readiness().await;
                let status = if reasons.is_empty() { 200 } else { 503 };
                let word = if reasons.is_empty() {
                    "ready"
                } else {
                    "not_ready"
                };
                reply(status, json!({"status": word, "reasons": reasons}))
            }
            "/health" => {
                let report = self.report().await;
                let status = if report["status"] == "ready" {
                    200
                } else {
                    503
                };
                reply(status, report)
            }
            "/config" => match self.live.current() {
                Some(snapshot) => reply(200, self.config_status(&snapshot)),
                None => reply(503, json!({"status": "starting"})),
            },
            "/routes" => match self.live.current() {
                Some(snapshot) => text(
                    "text/plain; charset=utf-8",
                    crate::commands::routes::table(&snapshot.config).into_bytes(),
                ),
                None => reply(503, json!({"status": "starting"})),
            },
            "/signing-keys" => match self.live.current() {
                Some(snapshot) => match &snapshot.signer {
                    Some(signer) => reply(200, signer.jwks()),
                    None => reply(200, json!({"keys": []})),
                },
                None => reply(503, json!({"status": "starting"})),
            },
            "/metrics" => text("text/plain; version=0.0.4", METRICS.render()),
            _ => reply(
                404,
                json!({"error": {"code": "not_found", "message": "no such admin endpoint"}}),
            ),
        }
    }
}

/// A 200 with `body` as `content_type`.
fn text(content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .expect("static response parts")
}

fn reply(status: u16, body: serde_json::Value) -> http::Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .expect("static response parts")
}
