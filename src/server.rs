//! Assembles the Pingora server: the public proxy listener, the admin listener and the
//! control plane, and runs it until a signal ends it.
//!
//! Shutdown: SIGTERM and SIGINT both drain gracefully (Pingora treats SIGINT as an
//! immediate exit; in a container both mean "stop"). Listeners stop accepting at once,
//! requests in flight get until `server.grace_period` to finish, and the process exits as
//! soon as none is left rather than always waiting out the whole period.

use crate::admin::AdminApp;
use crate::control::ControlPlane;
use crate::head_deadline::{ClientHelloDeadline, HeadDeadline};
use crate::prepare::Prepared;
use crate::proxy::UsherProxy;
use crate::snapshot::Live;
use crate::telemetry::access_log::AccessLog;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Pingora's keep-alive timeout for HTTP/1, applied to idle HTTP/2 connections too.
const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest an exit waits for the spans still queued to reach the collector.
const TRACE_FLUSH: Duration = Duration::from_secs(2);

/// Serves `config` (already validated, read from `path`) until a shutdown signal.
pub fn run(path: PathBuf, prepared: Prepared) -> Result<(), String> {
    let config = &prepared.config;
    let threads = config.server.threads;
    let grace = config.server.grace_period;
    let server_conf = ServerConf {
        threads,
        grace_period_seconds: Some(grace.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // Every timeout Pingora sets of a second or more (each read and write of a proxied
        // request, a pooled connection's idle timeout) on Tokio's timer rather than
        // Pingora's own, which keeps each deadline in a tree until it passes, cancelled or
        // not: measured in docs/benchmarks.md (fifth pass).
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();
    crate::telemetry::traces::start()?;

    let live = Arc::new(Live::default());
    let access_log = config.server.access_log.then(AccessLog::start);
    let app = pingora::proxy::http_proxy(
        &server.configuration,
        UsherProxy::new(Arc::clone(&live), access_log),
    );
    let mut proxy = Service::new(
        "usher proxy".to_string(),
        HeadDeadline::new(app, Arc::clone(&live)),
    );
    proxy.threads = Some(threads);
    let public = config.listeners.public.to_string();
    // Each client connection holds its read buffer while it is open, idle keep-alive ones
    // too; Pingora's write buffer default (one MSS) stays.
    let buffers = L4BufferSettings::default().read(config.listeners.read_buffer);
    let listener = ListenerConfig::tcp(public.clone()).l4_buffer(buffers);
    match &config.listeners.tls {
        None => proxy.add_listener(listener),
        Some(tls) => {
            let mut settings = TlsSettings::intermediate(&tls.cert_file, &tls.key_file)
                .map_err(|e| format!("loading the TLS certificate and key: {e}"))?;
            if tls.http2 {
                settings.enable_h2();
            }
            proxy.add_listener(listener.tls(settings));
            // The ClientHello within the head deadline too (Pingora allows 60 s).
            proxy
                .endpoints()
                .set_pre_tls_callback(Arc::new(ClientHelloDeadline::new(Arc::clone(&live))));
        }
    }
    if let Some(app) = proxy.app_logic_mut().and_then(HeadDeadline::inner_mut) {
        let mut options = HttpServerOptions::default();
        options.h2c = config.listeners.h2c;
        // HTTP/2 connections with no stream open are closed like idle HTTP/1 keep-alive
        // ones (the head deadline watches HTTP/2 only until its preface).
        options.h2_idle_timeout = Some(H2_IDLE_TIMEOUT);
        app.server_options = Some(options);
    }

    let mut admin = Service::new("usher admin".to_string(), AdminApp::new(Arc::clone(&live)));
    admin.threads = Some(1);
    admin.add_tcp(&config.listeners.admin.to_string());

    tracing::info!(public = %public, admin = %config.listeners.admin, threads, tls = config.listeners.tls.is_some(), "usher starting");
    let control = background_service(
        "usher control plane",
        ControlPlane::new(live, path, prepared),
    );
    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(control);
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainingShutdown { grace }),
    });
    // The grace period ended with requests in flight: their spans still go out.
    crate::telemetry::traces::flush(TRACE_FLUSH);
    Ok(())
}

struct DrainingShutdown {
    grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainingShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; draining"),
            _ = interrupt.recv() => tracing::info!("SIGINT received; draining"),
        }
        let grace = self.grace;
        std::thread::spawn(move || exit_when_drained(grace));
        ShutdownSignal::GracefulTerminate
    }
}

/// Directories removed when the process exits, by the drain or after the server stops.
static REMOVE_ON_EXIT: std::sync::Mutex<Vec<std::path::PathBuf>> =
    std::sync::Mutex::new(Vec::new());

/// Removes `directory` when Usher exits (`usher demo`'s throwaway secrets).
pub fn remove_on_exit(directory: std::path::PathBuf) {
    REMOVE_ON_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(directory);
}

/// Removes what [`remove_on_exit`] was given; safe to call more than once.
pub fn clean_up() {
    let directories =
        std::mem::take(&mut *REMOVE_ON_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for directory in directories {
        let _ = std::fs::remove_dir_all(directory);
    }
}

/// Exits as soon as no request is in flight. Pingora's own grace period is the upper bound.
fn exit_when_drained(grace: Duration) {
    let started = Instant::now();
    // Let the listeners see the shutdown before judging that nothing is in flight.
    std::thread::sleep(Duration::from_millis(100));
    while started.elapsed() < grace {
        if crate::load::requests_in_flight() <= 0 {
            tracing::info!(
                drained_in_ms = started.elapsed().as_millis() as u64,
                "drained; exiting"
            );
            // Give the access log writer its moment to flush, and the trace exporter its
            // batch in progress.
            std::thread::sleep(Duration::from_millis(50));
            crate::telemetry::traces::flush(TRACE_FLUSH);
            clean_up();
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(
        in_flight = crate::load::requests_in_flight(),
        "grace period over; exiting with requests in flight"
    );
}
