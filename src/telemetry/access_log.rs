//! The access log: one JSON line per request on stdout.
//!
//! The request path only moves a record into a bounded channel; a dedicated thread formats
//! and writes in batches, flushing and sleeping briefly whenever the channel runs dry. When the writer cannot keep up,
//! records are dropped and counted (`usher_access_log_dropped_total`) rather than slowing
//! traffic. Paths are logged without their query string, and no header values are logged,
//! so tokens and secrets never reach the log.

use super::metrics::METRICS;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const QUEUE_LENGTH: usize = 16 * 1024;
/// How long the writer sleeps once the queue is empty: the most a line waits to be written.
const WRITE_INTERVAL: Duration = Duration::from_millis(25);

/// What the request path hands over: owned values it already had, moved rather than
/// formatted, so a request pays for no string building. The writer thread formats.
#[derive(Debug)]
pub struct AccessRecord {
    pub time: SystemTime,
    pub request_id: super::correlation::Id,
    /// The W3C traceparent; its trace id is logged.
    pub traceparent: super::correlation::Id,
    pub client: Option<IpAddr>,
    pub method: http::Method,
    pub path: String,
    pub route: Option<Arc<str>>,
    /// The alias the request came through (`path` is then the path it asked for).
    pub alias: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub peer: Option<SocketAddr>,
    pub attempts: usize,
    pub status: u16,
    pub duration: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub error: Option<&'static str>,
    /// The verified caller, for incident response: who, in which tenant, with what kind of
    /// credential (never the credential).
    pub caller: Option<Arc<crate::security::Identity>>,
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
    let mut clock = Timestamps::default();
    loop {
        // Drain what is queued, then flush and sleep. The writer never blocks in `recv`,
        // so a request's `try_send` never has a sleeping thread to wake: waking it for
        // every line cost a context switch per request.
        loop {
            match records.try_recv() {
                Ok(record) => write_line(&mut out, &mut line, &record, clock.format(record.time)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
        std::thread::sleep(WRITE_INTERVAL);
    }
}

/// Writes one JSON object and a newline. Written by hand rather than through serde: at
/// tens of thousands of lines a second, generic serialization was the largest part of the
/// log's cost. Field order is fixed; strings are escaped per RFC 8259.
fn write_line(out: &mut impl Write, line: &mut Vec<u8>, record: &AccessRecord, ts: &str) {
    line.clear();
    line.extend_from_slice(b"{\"ts\":\"");
    line.extend_from_slice(ts.as_bytes());
    line.extend_from_slice(b"\",\"kind\":\"access\",\"request_id\":");
    push_str(line, &record.request_id);
    line.extend_from_slice(b",\"trace_id\":");
    push_str(line, super::correlation::trace_id(&record.traceparent));
    line.extend_from_slice(b",\"client\":");
    push_ip(line, record.client);
    line.extend_from_slice(b",\"method\":");
    push_str(line, record.method.as_str());
    line.extend_from_slice(b",\"path\":");
    push_str(line, &record.path);
    line.extend_from_slice(b",\"route\":");
    push_optional_str(line, record.route.as_deref());
    if let Some(alias) = &record.alias {
        line.extend_from_slice(b",\"alias\":");
        push_str(line, alias);
    }
    line.extend_from_slice(b",\"upstream\":");
    push_optional_str(line, record.upstream.as_deref());
    line.extend_from_slice(b",\"peer\":");
    push_peer(line, record.peer);
    let micros = record.duration.as_micros();
    let mut number = itoa::Buffer::new();
    line.extend_from_slice(b",\"attempts\":");
    line.extend_from_slice(number.format(record.attempts).as_bytes());
    line.extend_from_slice(b",\"status\":");
    line.extend_from_slice(number.format(record.status).as_bytes());
    line.extend_from_slice(b",\"duration_ms\":");
    line.extend_from_slice(number.format(micros / 1000).as_bytes());
    let fraction = (micros % 1000) as u16 + 1000; // three digits with leading zeros
    line.push(b'.');
    line.extend_from_slice(&number.format(fraction).as_bytes()[1..]);
    line.extend_from_slice(b",\"request_bytes\":");
    line.extend_from_slice(number.format(record.request_bytes).as_bytes());
    line.extend_from_slice(b",\"response_bytes\":");
    line.extend_from_slice(number.format(record.response_bytes).as_bytes());
    line.extend_from_slice(b",\"error\":");
    push_optional_str(line, record.error);
    let caller = record.caller.as_deref();
    line.extend_from_slice(b",\"subject\":");
    push_optional_str(line, caller.map(|c| c.subject.as_str()));
    line.extend_from_slice(b",\"tenant\":");
    push_optional_str(line, caller.map(|c| c.tenant.as_str()));
    line.extend_from_slice(b",\"credential\":");
    push_optional_str(line, caller.map(|c| c.source.as_str()));
    line.extend_from_slice(b",\"key_id\":");
    push_optional_str(line, caller.and_then(|c| c.key_id.as_deref()));
    line.extend_from_slice(b",\"jti_sha256\":");
    push_optional_str(line, caller.and_then(|c| c.token_digest.as_deref()));
    line.extend_from_slice(b"}\n");
    let _ = out.write_all(line);
}

fn push_optional_str(line: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => push_str(line, value),
        None => line.extend_from_slice(b"null"),
    }
}

/// The client's address as a JSON string, as `Display` writes it; `null` without one.
fn push_ip(line: &mut Vec<u8>, ip: Option<IpAddr>) {
    let Some(ip) = ip else {
        line.extend_from_slice(b"null");
        return;
    };
    line.push(b'"');
    crate::filters::client_address::write(line, ip);
    line.push(b'"');
}

/// The upstream peer as a JSON string, as `Display` writes a `SocketAddr`; `null` without
/// one.
fn push_peer(line: &mut Vec<u8>, peer: Option<SocketAddr>) {
    match peer {
        Some(SocketAddr::V4(v4)) => {
            line.push(b'"');
            crate::filters::client_address::write(line, IpAddr::V4(*v4.ip()));
            line.push(b':');
            line.extend_from_slice(itoa::Buffer::new().format(v4.port()).as_bytes());
            line.push(b'"');
        }
        Some(v6) => {
            use std::io::Write as _;
            let _ = write!(line, "\"{v6}\"");
        }
        None => line.extend_from_slice(b"null"),
    }
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn push_str(line: &mut Vec<u8>, value: &str) {
    line.push(b'"');
    let bytes = value.as_bytes();
    if !crate::scan::any(bytes, |b| b == b'"' || b == b'\\' || b < 0x20) {
        line.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => line.extend_from_slice(b"\\\""),
                b'\\' => line.extend_from_slice(b"\\\\"),
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b'\t' => line.extend_from_slice(b"\\t"),
                0..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    line.extend_from_slice(b"\\u00");
                    line.push(HEX[usize::from(b >> 4)]);
                    line.push(HEX[usize::from(b & 0xf)]);
                }
                _ => line.push(b),
            }
        }
    }
    line.push(b'"');
}

/// RFC 3339 timestamps for a stream of nearly equal times: the date and time of day are
/// formatted once per second, only the milliseconds per line.
#[derive(Default)]
struct Timestamps {
    second: u64,
    text: String,
}

impl Timestamps {
    fn format(&mut self, time: SystemTime) -> &str {
        let since_epoch = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if since_epoch.as_secs() != self.second || self.text.is_empty() {
            self.second = since_epoch.as_secs();
            self.text = rfc3339(time);
        }
        let millis = since_epoch.subsec_millis();
        let digits = [millis / 100, millis / 10 % 10, millis % 10].map(|d| b'0' + d as u8);
        // "…:SS.mmmZ": the three digits sit before the final Z.
        let start = self.text.len() - 4;
        self.text.replace_range(
            start..start + 3,
            std::str::from_utf8(&digits).expect("ASCII digits"),
        );
        &self.text
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

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_354_500_123);
        assert_eq!(rfc3339(t), "2026-11-22T13:35:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in ["203.0.113.7", "0.0.0.0", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut line = Vec::new();
            push_ip(&mut line, Some(ip));
            assert_eq!(line, format!("\"{ip}\"").into_bytes());
        }
        for peer in ["10.1.2.3:65535", "[2001:db8::1]:443", "[fe80::1%2]:80"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut line = Vec::new();
            push_peer(&mut line, Some(peer));
            assert_eq!(line, format!("\"{peer}\"").into_bytes());
        }
        let mut line = Vec::new();
        push_peer(&mut line, None);
        push_ip(&mut line, None);
        assert_eq!(line, b"nullnull");
    }

    #[test]
    fn hostile_strings_stay_valid_json() {
        let (queue, records) = sync_channel(4);
        let path = "/a\"b\\c\u{1}d\ne\u{7f}é/%22";
        queue
            .send(AccessRecord {
                time: SystemTime::UNIX_EPOCH,
                request_id: "id\"with\\quotes".into(),
                traceparent: Default::default(),
                client: Some("::1".parse().unwrap()),
                method: http::Method::from_bytes(b"PROPFIND").unwrap(),
                path: path.into(),
                route: None,
                alias: None,
                upstream: Some(Arc::from("svc")),
                peer: Some("127.0.0.1:8080".parse().unwrap()),
                attempts: 2,
                status: 502,
                duration: Duration::from_micros(1_234_567),
                request_bytes: 1,
                response_bytes: 2,
                error: Some("upstream_refused"),
                caller: Some(Arc::new(crate::security::Identity {
                    token_id: Some("jti-1".into()),
                    token_digest: Some(crate::security::token_digest("jti-1")),
                    ..crate::security::Identity::caller("u\"1", "t1", &[])
                })),
            })
            .unwrap();
        drop(queue);
        let mut out = Vec::new();
        write_records(records, &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["path"], path);
        assert_eq!(line["request_id"], "id\"with\\quotes");
        assert_eq!(line["client"], "::1");
        assert_eq!(line["peer"], "127.0.0.1:8080");
        assert_eq!(line["method"], "PROPFIND");
        assert_eq!(line["route"], serde_json::Value::Null);
        assert_eq!(line["duration_ms"], 1234.567);
        assert_eq!(line["error"], "upstream_refused");
        assert_eq!(
            (
                &line["subject"],
                &line["tenant"],
                &line["credential"],
                &line["key_id"]
            ),
            (
                &serde_json::json!("u\"1"),
                &serde_json::json!("t1"),
                &serde_json::json!("jwt"),
                &serde_json::Value::Null
            )
        );
        let jti = line["jti_sha256"].as_str().unwrap();
        assert!(jti.len() == 16 && !jti.contains("jti-1"), "{jti}");
    }

    #[test]
    fn cached_timestamps_match_full_formatting() {
        let mut clock = Timestamps::default();
        for millis in [
            1_795_354_500_123u64,
            1_795_354_500_999,
            1_795_354_501_007,
            1_795_354_561_000,
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            assert_eq!(clock.format(t), rfc3339(t));
        }
    }

    #[test]
    fn writes_one_json_line_per_record() {
        let (queue, records) = sync_channel(4);
        queue
            .send(AccessRecord {
                time: SystemTime::UNIX_EPOCH,
                request_id: "r1".into(),
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                client: Some("10.0.0.1".parse().unwrap()),
                method: http::Method::GET,
                path: "/a".into(),
                route: Some(Arc::from("a")),
                alias: None,
                upstream: None,
                peer: None,
                attempts: 0,
                status: 404,
                duration: Duration::from_micros(500),
                request_bytes: 0,
                response_bytes: 10,
                error: None,
                caller: None,
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
        assert_eq!(line["client"], "10.0.0.1");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["duration_ms"], 0.5);
    }
}
