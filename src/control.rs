//! The control plane: builds pools, publishes snapshots, and reloads routes.yaml.
//!
//! Pingora cannot add services after start, so upstream pools are not Pingora services:
//! this background service owns them and their tasks. For every configuration (the first
//! and each reload) it:
//! 1. compiles the file (pure; an invalid file is rejected here with every error logged,
//!    `usher_config_reloads_total{result="failure"}` counted, and the running config kept);
//! 2. builds the snapshot, taking over from the running one what asks the same places
//!    (`carry_over`: pools, the shared store, key sets, caches), and logs what it reused
//!    and what it built;
//! 3. publishes the new snapshot in one atomic store;
//! 4. stops the background tasks of pools that are no longer used.
//!
//! Triggers: a change in the config file's directory (watched, not the file, so the
//! symlink swap Kubernetes uses for a mounted ConfigMap is seen), debounced, and for a file
//! written in place only once its writer closed it ([`settle`]); and SIGHUP, which reloads
//! even when the file's bytes did not change. A file that would remove most running routes
//! is rejected unless it says it means to ([`mass_removal`]). After a publish, the metric
//! series of retired routes and upstreams are removed.

use crate::carry_over::{CarryOver, Running};
use crate::config;
use crate::prepare::{prepare, Prepared};
use crate::snapshot::{Live, Snapshot};
use crate::telemetry::metrics::METRICS;
use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Quiet time after the last file event before a reload, so a burst of events (an editor's
/// save, a ConfigMap's symlink swap) causes one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A steady trickle of events delays a reload by at most this much.
const MAX_DEBOUNCE: Duration = Duration::from_millis(500);
/// While a writer has the file open (written to, not yet closed), a reload waits for it to
/// close, or for this much quiet where a mount reports no closes.
const WRITER_QUIET: Duration = Duration::from_secs(3);
/// Below this many running routes, a reload may remove any share of them.
const GUARDED_ROUTES: usize = 10;

/// What a file event says about the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Bytes were written into the file in place: its writer may not be done.
    Writing,
    /// The file was closed by a writer, replaced (a rename, a ConfigMap swap), created or
    /// removed: what is there now is whole.
    Settled,
}

pub struct ControlPlane {
    live: Arc<Live>,
    path: PathBuf,
    first: Mutex<Option<Prepared>>,
}

impl ControlPlane {
    /// `first` is the configuration prepared at startup from `path`.
    pub fn new(live: Arc<Live>, path: PathBuf, first: Prepared) -> Self {
        live.set_config_path(path.clone());
        ControlPlane {
            live,
            path,
            first: Mutex::new(Some(first)),
        }
    }
}

#[async_trait]
impl BackgroundService for ControlPlane {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let first = self
            .first
            .lock()
            .expect("control plane lock")
            .take()
            .expect("the control plane starts once");
        // Watch before the first publish, so no change after startup can be missed.
        let (changed, mut changes) = mpsc::channel::<Change>(64);
        let _watcher = watch_directory(&self.path, changed);
        let mut hangups = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");

        let mut running = Running::new(Arc::clone(&self.live));
        let (snapshot, carried) = running.build(1, first, None).await;
        announce(&snapshot, &carried);
        self.live.publish(snapshot);
        // The file may have changed between startup's read and the watch.
        self.reload(&mut running, false, &mut changes).await;
        loop {
            tokio::select! {
                Some(change) = changes.recv() => {
                    settle(change, &mut changes).await;
                    self.reload(&mut running, false, &mut changes).await;
                }
                _ = hangups.recv() => self.reload(&mut running, true, &mut changes).await,
                _ = shutdown.changed() => break,
            }
        }
        running.stop_all().await;
    }
}

/// What reading and compiling the file gave.
enum Compiled {
    /// The bytes are those of the running configuration.
    Unchanged,
    Ready(Box<Prepared>),
    Unreadable(String),
    Invalid(config::ConfigErrors),
}

impl ControlPlane {
    /// Reads and compiles the file on a blocking thread. A change to the file while it
    /// compiles supersedes it: the newer file is compiled instead, so a slow compile never
    /// keeps a newer file from being considered (the abandoned one finishes unused).
    async fn compile_newest(&self, forced: bool, changes: &mut mpsc::Receiver<Change>) -> Compiled {
        loop {
            // A configuration that reads other files (body schemas) is read again whenever
            // the directory changes: its own bytes say nothing about theirs.
            let running = self
                .live
                .current()
                .filter(|s| !s.config.routes.iter().any(|r| r.body_schema.is_some()))
                .map(|s| s.config.hash.clone());
            let path = self.path.clone();
            let source = self.path.display().to_string();
            let mut work = tokio::task::spawn_blocking(move || {
                let text = match crate::prepare::read_bounded(&path) {
                    Ok(text) => text,
                    Err(error) => return Compiled::Unreadable(error),
                };
                if !forced && running.as_deref() == Some(config::content_hash(&text).as_str()) {
                    return Compiled::Unchanged;
                }
                match prepare(&source, &text) {
                    Ok(prepared) => Compiled::Ready(Box::new(prepared)),
                    Err(errors) => Compiled::Invalid(errors),
                }
            });
            tokio::select! {
                done = &mut work => {
                    return done.unwrap_or_else(|e| Compiled::Unreadable(format!("compiling failed: {e}")));
                }
                Some(change) = changes.recv() => {
                    settle(change, changes).await;
                    tracing::info!("the file changed while it was being compiled; compiling the newer one");
                }
            }
        }
    }

    async fn reload(
        &self,
        running: &mut Running,
        forced: bool,
        changes: &mut mpsc::Receiver<Change>,
    ) {
        let started = std::time::Instant::now();
        let compiled = self.compile_newest(forced, changes).await;
        let current = self.live.current();
        let prepared = match compiled {
            Compiled::Ready(prepared) => *prepared,
            Compiled::Unchanged => {
                tracing::debug!("configuration file unchanged");
                return;
            }
            Compiled::Unreadable(error) => {
                METRICS.config_reloads.with_label_values(&["failure"]).inc();
                tracing::error!(path = %self.path.display(), %error, "configuration reload failed; keeping the running configuration");
                self.live
                    .record_reload("unreadable", vec![error], started.elapsed());
                return;
            }
            Compiled::Invalid(errors) => {
                METRICS.config_reloads.with_label_values(&["failure"]).inc();
                for error in &errors.0 {
                    tracing::error!(error = %error, "configuration error");
                }
                let said = errors.0.iter().map(ToString::to_string).collect();
                self.live.record_reload("rejected", said, started.elapsed());
                tracing::error!(
                    errors = errors.0.len(),
                    running_version = current.as_ref().map(|s| s.version),
                    "configuration reload rejected; keeping the running configuration"
                );
                return;
            }
        };
        if let Some(refusal) = current
            .as_ref()
            .and_then(|current| mass_removal(&current.config, &prepared.config))
        {
            METRICS.config_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(reason = %refusal, "configuration reload rejected; keeping the running configuration");
            self.live
                .record_reload("rejected", vec![refusal.to_string()], started.elapsed());
            return;
        }
        if let Some(current) = &current {
            if current.config.listeners != prepared.config.listeners
                || current.config.server != prepared.config.server
            {
                tracing::warn!("listeners and server settings change only on restart; applying routes and upstreams now");
            }
        }
        let version = current.as_ref().map_or(1, |s| s.version + 1);
        let (snapshot, carried) = running.build(version, prepared, current.as_deref()).await;
        METRICS.config_reloads.with_label_values(&["success"]).inc();
        announce(&snapshot, &carried);
        let kept: HashSet<&str> = snapshot.config.routes.iter().map(|r| &*r.name).collect();
        let retired: Vec<Arc<str>> = current
            .iter()
            .flat_map(|old| old.config.routes.iter().map(|r| Arc::clone(&r.name)))
            .filter(|name| !kept.contains(&**name))
            .collect();
        drop(kept); // it borrows the snapshot, which is published next
        self.live.publish(snapshot);
        self.live
            .record_reload("success", Vec::new(), started.elapsed());
        running.stop_unused().await;
        METRICS.forget_routes(&retired.iter().map(|name| &**name).collect());
    }
}

/// Waits until the file is whole: once it was replaced or closed by its writer, until its
/// events are quiet for `DEBOUNCE` (`MAX_DEBOUNCE` at most); while a writer still has it
/// open, until the writer closes it or `WRITER_QUIET` passes without an event. A half-written
/// file is never read as the new configuration.
async fn settle(first: Change, changes: &mut mpsc::Receiver<Change>) {
    let started = tokio::time::Instant::now();
    let mut writing = first == Change::Writing;
    loop {
        let quiet = if writing {
            WRITER_QUIET
        } else if started.elapsed() < MAX_DEBOUNCE {
            DEBOUNCE
        } else {
            return;
        };
        match tokio::time::timeout(quiet, changes.recv()).await {
            Ok(Some(change)) => writing = change == Change::Writing,
            Ok(None) | Err(_) => return,
        }
    }
}

/// Why a new configuration would remove too many routes at once, if it would: a file cut
/// short (a writer that stopped after `routes:`) is valid YAML that serves nothing. The new
/// file's `limits.max_route_removal_percent` says how much it means to remove.
fn mass_removal(running: &config::Config, next: &config::Config) -> Option<String> {
    let total = running.routes.len();
    if total < GUARDED_ROUTES {
        return None;
    }
    let kept: HashSet<&str> = next.routes.iter().map(|r| &*r.name).collect();
    let removed = running
        .routes
        .iter()
        .filter(|route| !kept.contains(&*route.name))
        .count();
    let allowed = usize::from(next.limits.max_route_removal_percent);
    (removed * 100 > total * allowed).then(|| {
        format!("it removes {removed} of the {total} running routes, more than limits.max_route_removal_percent ({allowed}) allows; if that is meant, raise it in the new file")
    })
}

fn announce(snapshot: &Snapshot, carried: &CarryOver) {
    METRICS.present(&snapshot.config);
    METRICS.config_info.reset();
    METRICS
        .config_info
        .with_label_values(&[&snapshot.version.to_string(), &snapshot.config.hash])
        .set(1);
    tracing::info!(
        version = snapshot.version,
        hash = %snapshot.config.hash,
        routes = snapshot.config.routes.len(),
        upstreams = snapshot.config.upstreams.len(),
        reused = %CarryOver::describe(&carried.reused),
        built = %CarryOver::describe(&carried.built),
        "configuration active"
    );
}

/// Watches the directory holding `path` and sends on `changed` when an event touches the
/// file itself or one of the `..`-prefixed entries through which Kubernetes swaps a mounted
/// ConfigMap. Other files in the directory (logs, editor swap files) are ignored: a steady
/// stream of their events would otherwise keep the debounce from ever settling.
fn watch_directory(
    path: &std::path::Path,
    changed: mpsc::Sender<Change>,
) -> Option<notify::RecommendedWatcher> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        use notify::EventKind;
        let on_file = event
            .paths
            .iter()
            .any(|p| p.file_name().is_some() && p.file_name() == file_name.as_deref());
        let on_swap = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(".."))
        });
        let change = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) if on_file => Change::Settled,
            // Reading the file (as a reload does) raises other access events: reacting to
            // them would make every check trigger the next one.
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Data(_)) if on_file => Change::Writing,
            _ if on_file || on_swap => Change::Settled,
            _ => return,
        };
        let _ = changed.try_send(change);
    });
    match watcher.and_then(|mut w| w.watch(&directory, RecursiveMode::NonRecursive).map(|()| w)) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(directory = %directory.display(), error = %e, "cannot watch the configuration directory; reload with SIGHUP");
            None
        }
    }
}
