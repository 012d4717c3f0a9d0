//! The access log: one JSON line per request on stdout.
//!
//! The request path only moves a record into a bounded channel; a dedicated thread formats
//! and writes, and flushes whenever the channel runs dry. When the writer cannot keep up,
//! records are dropped and counted (`usher_access_log_dropped_total`) rather than slowing
//! traffic. Paths are logged without their query string, and no header values are logged,
//! so tokens and secrets never reach the log.

use super::metrics::METRICS;
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::SystemTime;

const QUEUE_LENGTH: usize = 16 * 1024;

#[derive(Debug, Serialize)]
pub struct AccessRecord {
    #[serde(skip)]
    pub time: SystemTime,
    pub request_id: String,
    pub trace_id: String,
    pub client: Option<String>,
    pub method: String,
    pub path: String,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub peer: Option<String>,
    pub attempts: usize,
    pub status: u16,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<AccessRecord>,
}

impl AccessLog {
    /// Starts the writer thread, writing to stdout.
    pub fn start() -> AccessLog {
        let (queue, records) = sync_channel(QUEUE_LENGTH);
        std::thread::Builder::new()
            .name("usher-access-log".into())
            .spawn(move || write_records(records, std::io::stdout().lock()))
            .expect("spawning the access log thread");
        AccessLog { queue }
    }

    pub fn log(&self, record: AccessRecord) {
        if self.queue.try_send(record).is_err() {
            METRICS.access_log_dropped.inc();
        }
    }
}

fn write_records(records: Receiver<AccessRecord>, out: impl Write) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    loop {
        let record = match records.try_recv() {
            Ok(record) => record,
            Err(TryRecvError::Empty) => {
                let _ = out.flush();
                match records.recv() {
                    Ok(record) => record,
                    Err(_) => return,
                }
            }
            Err(TryRecvError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        };
        line.clear();
        line.extend_from_slice(b"{\"ts\":\"");
        line.extend_from_slice(rfc3339(record.time).as_bytes());
        line.extend_from_slice(b"\",\"kind\":\"access\",");
        let object_start = line.len();
        if serde_json::to_writer(&mut line, &record).is_ok() {
            // Splice the two leading fields onto the serialized object: drop its `{`.
            line.remove(object_start);
            line.push(b'\n');
            let _ = out.write_all(&line);
        }
    }
}

/// `2026-11-22T13:35:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, seconds_of_day) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds_of_day / 3_600,
        seconds_of_day % 3_600 / 60,
        seconds_of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_354_500_123);
        assert_eq!(rfc3339(t), "2026-11-22T13:35:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn writes_one_json_line_per_record() {
        let (queue, records) = sync_channel(4);
        queue
            .send(AccessRecord {
                time: SystemTime::UNIX_EPOCH,
                request_id: "r1".into(),
                trace_id: "t".into(),
                client: None,
                method: "GET".into(),
                path: "/a".into(),
                route: Some("a".into()),
                upstream: None,
                peer: None,
                attempts: 0,
                status: 404,
                duration_ms: 0.5,
                request_bytes: 0,
                response_bytes: 10,
                error: None,
            })
            .unwrap();
        drop(queue);
        let mut out = Vec::new();
        write_records(records, &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(line["kind"], "access");
        assert_eq!(line["status"], 404);
        assert_eq!(line["route"], "a");
    }
}
