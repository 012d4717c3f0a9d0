//! The running configuration: one immutable [`Snapshot`] behind one `ArcSwap`.
//!
//! A request loads the snapshot once, in its first phase, and keeps that `Arc` to the end,
//! so a reload that lands mid-request never mixes two configurations. A reload builds a
//! complete new snapshot (router, pools, policies) and publishes it in one atomic store.

use crate::approval::Approvals;
use crate::config::Config;
use crate::idempotency::Store as IdempotencyStore;
use crate::prepare::Prepared;
use crate::ratelimit::Limiter;
use crate::router::Router;
use crate::security::Security;
use crate::signatures::deliveries::Deliveries;
use crate::signatures::keys::WebhookKeys;
use crate::signatures::signer::Signer;
use crate::store::SharedStore;
use crate::telemetry::metrics::RouteMetrics;
use crate::upstream::Pool;
use crate::validation::Schemas;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct Snapshot {
    /// Counts successful loads in this process: 1 for the first, +1 per reload.
    pub version: u64,
    pub config: Config,
    pub router: Router,
    /// Indexed like `config.upstreams`.
    pub pools: Vec<Arc<Pool>>,
    /// Indexed like `config.routes`.
    pub route_metrics: Vec<RouteMetrics>,
    /// Indexed like `config.rate_limiting.policies`.
    pub policy_decisions: Vec<crate::ratelimit::Decisions>,
    /// Key material and API keys, loaded for this configuration.
    pub security: Arc<Security>,
    /// The Redis every replica shares, when configured; kept across reloads that do not
    /// change its settings.
    pub store: Option<Arc<SharedStore>>,
    /// Rate-limit stores; kept with the shared store.
    pub limiter: Arc<Limiter>,
    /// The routes' body schemas, compiled for this configuration.
    pub schemas: Schemas,
    /// The routes' webhook secrets, read for this configuration.
    pub webhook_keys: WebhookKeys,
    /// Usher's signing keys, when an upstream gets signed requests.
    pub signer: Option<Signer>,
    /// What the process keeps across reloads.
    pub kept: Kept,
}

/// What one process keeps across every reload: records of requests already made (their
/// in-process stores, and the scripts that keep them in Redis).
#[derive(Clone, Default)]
pub struct Kept {
    pub idempotency: Arc<IdempotencyStore>,
    pub approvals: Arc<Approvals>,
    pub deliveries: Arc<Deliveries>,
}

impl Snapshot {
    pub fn new(
        version: u64,
        prepared: Prepared,
        pools: Vec<Arc<Pool>>,
        limiter: Arc<Limiter>,
        kept: Kept,
    ) -> Snapshot {
        let store = limiter.shared_store().cloned();
        let Prepared {
            config,
            security,
            schemas,
            webhook_keys,
            signer,
            ..
        } = prepared;
        Snapshot {
            security: Arc::new(security),
            schemas,
            store,
            limiter,
            webhook_keys,
            signer,
            kept,
            version,
            router: Router::new(&config.routes, &config.aliases),
            route_metrics: config
                .routes
                .iter()
                .map(|r| RouteMetrics::new(&r.name))
                .collect(),
            policy_decisions: (config.rate_limiting.policies.iter())
                .map(|policy| crate::ratelimit::decisions(policy))
                .collect(),
            config,
            pools,
        }
    }
}

/// A snapshot of `yaml` for the tests of the proxy's stages: compiled, with its own pools and
/// an in-process limiter, no Redis, nothing kept from a configuration before.
#[cfg(test)]
impl Snapshot {
    pub fn compiled(yaml: &str) -> Snapshot {
        let prepared =
            crate::prepare::prepare("test.yaml", yaml).expect("the test configuration compiles");
        let upstreams = prepared.config.upstreams.iter();
        let pools = upstreams.map(|spec| Pool::new(spec.clone())).collect();
        let limiter = Arc::new(Limiter::new(None));
        Snapshot::new(1, prepared, pools, limiter, Kept::default())
    }
}

/// What the proxy, the admin endpoints and the control plane share.
pub struct Live {
    current: ArcSwapOption<Snapshot>,
    started: Instant,
    startup_complete: AtomicBool,
    /// The configuration file, and how the last reload of it went.
    reloads: std::sync::Mutex<Reloads>,
}

#[derive(Debug, Clone, Default)]
pub struct Reloads {
    /// The file the configuration is read from (none when it is built in, as in tests).
    pub path: Option<std::path::PathBuf>,
    pub last: Option<ReloadAttempt>,
}

/// One reload attempt after startup.
#[derive(Debug, Clone)]
pub struct ReloadAttempt {
    pub at: std::time::SystemTime,
    /// `success`, `rejected` (invalid, or removing too many routes) or `unreadable`.
    pub result: &'static str,
    /// What was wrong, as the log says it (each error with its place).
    pub errors: Vec<String>,
    /// From the signal or the settled change to the new configuration serving (or to its
    /// refusal): reading, compiling, and building pools and stores.
    pub took: std::time::Duration,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            current: ArcSwapOption::empty(),
            started: Instant::now(),
            startup_complete: AtomicBool::new(false),
            reloads: std::sync::Mutex::default(),
        }
    }
}

impl Live {
    /// The snapshot in force, or `None` before the first configuration is published.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Some(Arc::new(snapshot)));
        self.startup_complete.store(true, Ordering::Release);
    }

    /// True once the first configuration was published, its pools resolved and checked.
    pub fn startup_complete(&self) -> bool {
        self.startup_complete.load(Ordering::Acquire)
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    fn reloads_mut(&self) -> std::sync::MutexGuard<'_, Reloads> {
        self.reloads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names the file the configuration is read from.
    pub fn set_config_path(&self, path: std::path::PathBuf) {
        self.reloads_mut().path = Some(path);
    }

    /// Remembers how a reload went.
    pub fn record_reload(
        &self,
        result: &'static str,
        errors: Vec<String>,
        took: std::time::Duration,
    ) {
        self.reloads_mut().last = Some(ReloadAttempt {
            at: std::time::SystemTime::now(),
            result,
            errors,
            took,
        });
    }

    pub fn reloads(&self) -> Reloads {
        self.reloads_mut().clone()
    }
}
