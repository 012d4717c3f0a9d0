//! Finished spans leave the request path through a bounded queue to one exporter thread,
//! which sends them to the collector in batches (OTLP/HTTP, protobuf). A full queue drops
//! the span and counts it; a collector that is down or slow fills the queue, never a
//! request's time. A request wakes the exporter only when it completes a batch, else the
//! exporter wakes once per schedule delay: a wake-up per span would cost more than the
//! span. The thread runs its own small runtime and waits on it (never blocking it), so its
//! kept-alive connection to the collector is looked after between batches, and an export
//! never competes with Pingora's request threads for theirs.

use super::settings::Settings;
use crate::telemetry::metrics::{span_outcome, METRICS};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prometheus::IntCounter;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The request path's end of the queue.
pub struct Queue {
    shared: Arc<Shared>,
    max_queue: usize,
    max_batch: usize,
    dropped: IntCounter,
}

struct Shared {
    waiting: Mutex<Waiting>,
    /// Notified when a batch is complete, or a flush is asked for.
    ready: Notify,
}

#[derive(Default)]
struct Waiting {
    spans: Vec<SpanData>,
    /// Flushes asked for: each is told once what came before it is exported.
    flushes: Vec<mpsc::Sender<()>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding the lock leaves a Vec of spans: still usable.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Queue {
    /// Hands a finished span to the exporter, or drops it when the queue is full.
    pub fn push(&self, span: SpanData) {
        let mut waiting = self.shared.lock();
        if waiting.spans.len() >= self.max_queue {
            drop(waiting);
            self.dropped.inc();
            return;
        }
        waiting.spans.push(span);
        let complete = waiting.spans.len() == self.max_batch;
        drop(waiting);
        if complete {
            self.shared.ready.notify_one();
        }
    }

    /// Waits up to `limit` for what is queued to be exported (at shutdown).
    pub fn flush(&self, limit: Duration) {
        let (done, exported) = mpsc::channel();
        self.shared.lock().flushes.push(done);
        self.shared.ready.notify_one();
        let _ = exported.recv_timeout(limit);
    }
}

/// Starts the exporter thread.
pub fn start<E: SpanExporter + 'static>(settings: &Settings, exporter: E) -> Result<Queue, String> {
    let shared = Arc::new(Shared {
        waiting: Mutex::new(Waiting::default()),
        ready: Notify::new(),
    });
    let batching = Batching {
        max_batch: settings.max_batch,
        delay: settings.schedule_delay,
        timeout: settings.export_timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the trace exporter's runtime: {e}"))?;
    let exporting = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("usher-traces".into())
        .spawn(move || runtime.block_on(run(&exporting, exporter, batching)))
        .map_err(|e| format!("the trace exporter's thread: {e}"))?;
    Ok(Queue {
        shared,
        max_queue: settings.max_queue,
        max_batch: settings.max_batch,
        dropped: METRICS
            .trace_spans
            .with_label_values(&[span_outcome::QUEUE_FULL]),
    })
}

struct Batching {
    max_batch: usize,
    delay: Duration,
    timeout: Duration,
}

/// Exports forever, a batch at a time: once a batch is complete, a flush is asked for, or
/// the schedule delay has passed. A flush is answered once nothing is waiting.
async fn run<E: SpanExporter>(shared: &Shared, exporter: E, batching: Batching) {
    let exported = METRICS
        .trace_spans
        .with_label_values(&[span_outcome::EXPORTED]);
    let failed = METRICS
        .trace_spans
        .with_label_values(&[span_outcome::EXPORT_FAILED]);
    let mut failures = Failures::default();
    loop {
        let due = {
            let waiting = shared.lock();
            waiting.spans.len() >= batching.max_batch || !waiting.flushes.is_empty()
        };
        if !due {
            // A notification sent since the last batch is kept, so none is missed.
            let _ = tokio::time::timeout(batching.delay, shared.ready.notified()).await;
        }
        let (batch, flushes) = {
            let mut waiting = shared.lock();
            let size = waiting.spans.len().min(batching.max_batch);
            let batch: Vec<SpanData> = waiting.spans.drain(..size).collect();
            let flushes = match waiting.spans.is_empty() {
                true => std::mem::take(&mut waiting.flushes),
                false => Vec::new(),
            };
            (batch, flushes)
        };
        if !batch.is_empty() {
            let count = batch.len() as u64;
            let error = match tokio::time::timeout(batching.timeout, exporter.export(batch)).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!(
                    "timed out after {} ms",
                    batching.timeout.as_millis()
                )),
            };
            match error {
                None => exported.inc_by(count),
                Some(error) => {
                    failed.inc_by(count);
                    failures.note(count, &error);
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// How often a failing collector is logged: the first failure, then once a minute with
/// what failed since (the counter has every one).
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Failures {
    last_warned: Option<Instant>,
    spans_since: u64,
}

impl Failures {
    fn note(&mut self, spans: u64, error: &str) {
        self.spans_since += spans;
        if self.last_warned.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(spans = self.spans_since, error, "trace export failed");
        self.last_warned = Some(Instant::now());
        self.spans_since = 0;
    }
}
