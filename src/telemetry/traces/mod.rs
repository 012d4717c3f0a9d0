//! OpenTelemetry traces, exported over OTLP/HTTP (docs/metrics.md#traces). Off unless the
//! environment asks for them (settings.rs). Then each request gets a server span named by
//! its route, each attempt at an upstream a client span whose id the upstream receives as
//! its parent in `traceparent`, and admission's decisions (authentication, rate limits,
//! idempotency, the circuit breaker) become events of the server span.
//!
//! Spans are built from the request's context when it ends (span.rs), not through live
//! tracer objects: Pingora's phases already hold every time and outcome, so an unsampled
//! request costs two random ids and its `traceparent`. The SDK supplies the data model, the
//! samplers, the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) and the OTLP
//! exporter; finished spans reach it through a bounded queue (export.rs), so a collector
//! that is slow or down costs dropped spans, counted, never request time.

mod client;
mod export;
pub mod sampler;
mod semantics;
mod settings;
mod span;

pub use semantics::Finished;
pub use span::RequestTrace;

use opentelemetry::KeyValue;
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::trace::SpanExporter as _;
use opentelemetry_sdk::Resource;
use sampler::Sampler;
use std::sync::OnceLock;
use std::time::Duration;

/// What every traced request reads: the process's sampler and the way to the exporter.
pub struct Tracer {
    pub sampler: Sampler,
    queue: export::Queue,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The tracer, when tracing is on.
pub fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

impl Tracer {
    /// Exports the spans of a finished request, if it was sampled.
    pub fn finish(&self, trace: RequestTrace, request: &Finished<'_>) {
        trace.finish(request, |span| self.queue.push(span));
    }
}

/// Starts exporting if the environment asks for it, before any request. A setting Usher
/// cannot use is an error that names its variable.
pub fn start() -> Result<(), String> {
    let Some(settings) = settings::from_env(|name| std::env::var(name).ok())? else {
        return Ok(());
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client::CollectorClient::new(settings.request_timeout))
        .build()
        .map_err(|e| format!("the OTLP trace exporter: {e}"))?;
    exporter.set_resource(&resource());
    let tracer = Tracer {
        queue: export::start(&settings, exporter)?,
        sampler: settings.sampler,
    };
    tracing::info!(sampler = ?tracer.sampler, max_queue = settings.max_queue, "exporting traces over OTLP/HTTP");
    let _ = TRACER.set(tracer);
    Ok(())
}

/// Exports what is queued, waiting at most `limit`: when the process exits.
pub fn flush(limit: Duration) {
    if let Some(tracer) = tracer() {
        tracer.queue.flush(limit);
    }
}

/// The SDK's resource from the environment (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), with the name `usher` and this build's version where it
/// gives none.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let attribute = |key| detected.get(&opentelemetry::Key::from_static_str(key));
    // The SDK's own fallback name is `unknown_service[:<executable>]`.
    let unnamed =
        attribute("service.name").is_none_or(|n| n.as_str().starts_with("unknown_service"));
    let mut missing = Vec::new();
    if unnamed {
        missing.push(KeyValue::new("service.name", "usher"));
    }
    if attribute("service.version").is_none() {
        missing.push(KeyValue::new("service.version", crate::telemetry::VERSION));
    }
    Resource::builder().with_attributes(missing).build()
}
