//! OpenTelemetry traces through the real gateway, received by an OTLP/HTTP collector
//! started here that decodes what arrives with the OpenTelemetry project's own protobuf
//! types (`opentelemetry-proto`): span names, kinds and attributes, the parent links from
//! the client's span through Usher's server span and each attempt's client span to what
//! the upstream saw, samplers (the process's, a route's, the caller's decision), and a
//! collector that is down or slow changing no response.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef-traces";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: every export request decoded and kept, answered after `delay`;
/// what is not a well-formed export is kept as a problem (a panic in its task would only
/// show as missing spans).
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    problems: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start(delay: Duration) -> Collector {
        Self::start_at(delay, "/v1/traces").await
    }

    /// A collector that takes exports at `path` only.
    async fn start_at(delay: Duration, path: &'static str) -> Collector {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (kept, wrong) = (Arc::clone(&received), Arc::clone(&problems));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, wrong) = (Arc::clone(&kept), Arc::clone(&wrong));
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (kept, wrong) = (Arc::clone(&kept), Arc::clone(&wrong));
                            async move {
                                let head = format!("{} {:?}", request.uri(), request.headers());
                                let proper = request.uri().path() == path
                                    && request.headers()["content-type"]
                                        == "application/x-protobuf";
                                // Only exports that carry OTEL_EXPORTER_OTLP_HEADERS count.
                                let auth = request.headers().get("x-collector-key").cloned();
                                let authorized = auth.is_some_and(|v| v == "secret-1");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                match ExportTraceServiceRequest::decode(body) {
                                    Ok(decoded) if proper && authorized => {
                                        kept.lock().unwrap().push(decoded)
                                    }
                                    other => {
                                        wrong.lock().unwrap().push(format!("{head}: {other:?}"))
                                    }
                                }
                                tokio::time::sleep(delay).await;
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector {
            addr,
            received,
            problems,
            task,
        }
    }

    /// Every span received so far, with its resource's attributes.
    fn spans(&self) -> Vec<(Span, HashMap<String, String>)> {
        let received = self.received.lock().unwrap();
        let mut spans = Vec::new();
        for request in received.iter() {
            for resource_spans in &request.resource_spans {
                let resource = resource_spans
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        spans.push((span.clone(), resource.clone()));
                    }
                }
            }
        }
        spans
    }

    /// The spans of trace `trace_id`, once `count` of them have come (within 10 s).
    async fn trace(&self, trace_id: &str, count: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let problems = self.problems.lock().unwrap().clone();
            assert!(problems.is_empty(), "not a proper export: {problems:?}");
            let spans: Vec<Span> = (self.spans().into_iter())
                .map(|(span, _)| span)
                .filter(|span| hex(&span.trace_id) == trace_id)
                .collect();
            if spans.len() >= count || Instant::now() > deadline {
                assert_eq!(spans.len(), count, "spans of {trace_id}: {spans:#?}");
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first span received that `wanted` says is the one, within 10 s.
async fn span_where(collector: &Collector, wanted: impl Fn(&Span) -> bool) -> Span {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((span, _)) = collector.spans().into_iter().find(|(s, _)| wanted(s)) {
            return span;
        }
        assert!(Instant::now() < deadline, "no such span");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn kind(span: &Span, kind: SpanKind) -> bool {
    span.kind == kind as i32
}

fn token() -> String {
    let now = unix_now();
    hs256_jwt(
        SECRET,
        &json!({"sub": "u1", "tenant_id": "t1", "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
    )
}

/// What a test's gateway has besides the common set-up.
#[derive(Default)]
struct Setup<'a> {
    /// More environment variables.
    env: &'a [(&'a str, &'a str)],
    /// Loopback is a trusted proxy: the caller's sampled flag counts.
    trusted_proxy: bool,
    /// The upstream of `/stall`, a route with a 500 ms deadline.
    stall: Option<SocketAddr>,
}

/// A gateway exporting to `collector`, in front of `upstream`: a public route, an
/// authenticated and rate-limited one, an idempotent one, one to an upstream whose first
/// target refuses connections, one that samples every request, and `/stall`.
async fn start_gateway(collector: SocketAddr, upstream: &EchoServer, setup: Setup<'_>) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = free_port();
    let endpoint = format!("http://{collector}");
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=secret-1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "usher-under-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
    ];
    vars.extend_from_slice(setup.env);
    let stall = setup
        .stall
        .unwrap_or_else(|| format!("127.0.0.1:{dead}").parse().unwrap());
    let identity = match setup.trusted_proxy {
        true => r#"identity: { trusted_proxies: ["127.0.0.1/32"] }"#,
        false => "",
    };
    let gateway = Gateway::start_with_env(
        &format!(
            r#"
{identity}
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{secret}" }}] }}
rate_limiting:
  policies:
    per-user: {{ limit: 100, window: 1m, key: [user] }}
    tight: {{ limit: 1, window: 1h, key: [client] }}
upstreams:
  svc: {{ targets: ["{upstream}"], health_check: {{ type: tcp, interval: 10s }} }}
  flaky:
    targets: ["127.0.0.1:{dead}", "{upstream}"]
    retries: 1
    health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }}
  stall: {{ targets: ["{stall}"], health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }} }}
routes:
  - {{ name: items, match: {{ path: "/items/:id" }}, upstream: svc, public: true }}
  - {{ name: orders, match: {{ path: /orders }}, upstream: svc, rate_limits: [per-user] }}
  - {{ name: buy, match: {{ path: /buy }}, upstream: svc, max_body: 16KiB, idempotency: {{}} }}
  - {{ name: flaky, match: {{ path: /flaky }}, upstream: flaky, public: true }}
  - {{ name: money, match: {{ path: /money }}, upstream: svc, public: true, tracing: {{ sampler: always_on }} }}
  - {{ name: stall, match: {{ path: /stall }}, upstream: stall, public: true, timeout: 500ms }}
  - {{ name: tight, match: {{ path: /tight }}, upstream: svc, public: true, rate_limits: [tight] }}
  - {{ name: rare, match: {{ path: /rare }}, upstream: svc, public: true, tracing: {{ sampler: traceidratio, ratio: 0 }} }}
"#,
            secret = secret.display(),
            upstream = upstream.addr,
        ),
        &vars,
    )
    .await;
    // The secret file is read at start; the directory may go.
    drop(dir);
    gateway
}

async fn call(gateway: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let body = (method == "POST").then_some(&b"{}"[..]);
    request(gateway.public, method, path, headers, body)
        .await
        .unwrap()
}

/// The header `name` as the upstream received it (the echo's answer).
fn seen(response: &Response, name: &str) -> Option<String> {
    let values = &response.json()["headers"][name];
    values[0].as_str().map(str::to_string)
}

/// The `traceparent` the upstream received.
fn traceparent_seen(response: &Response) -> String {
    seen(response, "traceparent").expect("the upstream got a traceparent")
}

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-{flags}")
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_name_the_route_and_chain_from_the_caller_to_the_upstream() {
    let collector = Collector::start(Duration::ZERO).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = start_gateway(collector.addr, &upstream, Setup::default()).await;

    let sent = traceparent("01");
    let headers = [("traceparent", sent.as_str()), ("tracestate", "vendor=abc")];
    let response = call(&gateway, "GET", "/items/42?token=secret", &headers).await;
    assert_eq!(response.status, 200);

    let spans = collector.trace(TRACE, 2).await;
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    let client = spans.iter().find(|s| kind(s, SpanKind::Client)).unwrap();
    // The server span is named by the route, never the path, and is the caller's child.
    assert_eq!(server.name, "GET /items/:id");
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    let attrs = attributes(&server.attributes);
    assert_eq!(attrs["http.request.method"], "GET");
    assert_eq!(attrs["http.route"], "/items/:id");
    assert_eq!(attrs["http.response.status_code"], "200");
    assert_eq!(attrs["url.path"], "/items/42");
    assert_eq!(attrs["url.scheme"], "http");
    assert_eq!(attrs["client.address"], "127.0.0.1");
    assert_eq!(attrs["server.address"], "127.0.0.1");
    assert_eq!(attrs["server.port"], gateway.public.port().to_string());
    assert_eq!(attrs["network.protocol.version"], "1.1");
    assert_eq!(attrs["usher.route"], "items");
    assert_eq!(attrs["usher.upstream"], "svc");
    assert_eq!(
        attrs["usher.request_id"],
        response.header("x-request-id").unwrap()
    );
    assert!(!format!("{attrs:?}").contains("secret"), "{attrs:?}");
    // One attempt: a client span under the server span, whose id the upstream got as its
    // parent, with the caller's tracestate passed on.
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.name, "GET");
    let attempt = attributes(&client.attributes);
    assert_eq!(attempt["usher.attempt"], "1");
    assert_eq!(attempt["server.address"], "127.0.0.1");
    assert_eq!(attempt["server.port"], upstream.addr.port().to_string());
    assert_eq!(attempt["http.response.status_code"], "200");
    assert_eq!(
        attempt["url.full"],
        format!("http://{}/items/42", upstream.addr)
    );
    assert!(!attempt.contains_key("http.request.resend_count"));
    assert_eq!(
        seen(&response, "traceparent").unwrap(),
        format!("00-{TRACE}-{}-01", hex(&client.span_id))
    );
    assert_eq!(seen(&response, "tracestate").unwrap(), "vendor=abc");
    assert!(client.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(client.end_time_unix_nano <= server.end_time_unix_nano);
    // The resource: the service as the environment names it, and its attributes.
    let (_, resource) = collector.spans().into_iter().next().unwrap();
    assert_eq!(resource["service.name"], "usher-under-test");
    assert_eq!(resource["deployment.environment"], "ci");
    assert_eq!(resource["telemetry.sdk.name"], "opentelemetry");
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_decisions_are_events_and_each_attempt_a_span() {
    let collector = Collector::start(Duration::ZERO).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = start_gateway(collector.addr, &upstream, Setup::default()).await;
    let bearer = format!("Bearer {}", token());
    let trace_of = |response: &Response| {
        let upstream_got = traceparent_seen(response);
        upstream_got[3..35].to_string()
    };

    // Verified and admitted: both decisions on the server span; the breaker let it through.
    let response = call(&gateway, "GET", "/orders", &[("authorization", &bearer)]).await;
    assert_eq!(response.status, 200);
    let spans = collector.trace(&trace_of(&response), 2).await;
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    let events: HashMap<_, _> = (server.events.iter())
        .map(|e| (e.name.as_str(), attributes(&e.attributes)))
        .collect();
    assert_eq!(events["usher.auth"]["usher.outcome"], "verified");
    assert_eq!(events["usher.auth"]["usher.credential"], "jwt");
    assert_eq!(events["usher.auth"]["usher.tenant"], "t1");
    assert_eq!(events["usher.rate_limit"]["usher.outcome"], "admitted");
    assert_eq!(
        events["usher.rate_limit"]["usher.rate_limit.policies"],
        "per-user"
    );
    assert_eq!(
        events["usher.rate_limit"]["usher.rate_limit.remaining"],
        "99"
    );
    assert_eq!(events["usher.circuit_breaker"]["usher.outcome"], "allowed");
    assert!(!format!("{events:?}").contains(&bearer[7..]));
    assert_eq!(attributes(&server.attributes)["usher.tenant"], "t1");

    // Refused at authentication: the refusal is the event, and no attempt was made. Usher's
    // own trace, since the caller sent none.
    let response = call(&gateway, "GET", "/orders", &[]).await;
    assert_eq!(response.status, 401);
    let refused = span_where(&collector, |span| {
        attributes(&span.attributes).get("http.response.status_code") == Some(&"401".to_string())
    })
    .await;
    assert_eq!(refused.name, "GET /orders");
    assert!(refused.parent_span_id.is_empty());
    let attrs = attributes(&refused.attributes);
    assert_eq!(attrs["http.response.status_code"], "401");
    assert_eq!(attrs["usher.code"], "unauthenticated");
    // A refusal is not Usher failing: no error.type, and the span's status stays unset.
    assert!(!attrs.contains_key("error.type"), "{attrs:?}");
    let event = &refused.events[0];
    assert_eq!(event.name, "usher.auth");
    assert_eq!(
        attributes(&event.attributes)["usher.code"],
        "unauthenticated"
    );
    assert_eq!(refused.status.as_ref().map_or(0, |s| s.code), 0);

    // Refused by a rate limit: the refusal is the event.
    assert_eq!(call(&gateway, "GET", "/tight", &[]).await.status, 200);
    assert_eq!(call(&gateway, "GET", "/tight", &[]).await.status, 429);
    let limited = span_where(&collector, |span| {
        attributes(&span.attributes).get("http.response.status_code") == Some(&"429".to_string())
    })
    .await;
    let event = (limited.events.iter())
        .find(|e| e.name == "usher.rate_limit")
        .expect("a rate-limit event");
    let attrs = attributes(&event.attributes);
    assert_eq!(attrs["usher.outcome"], "refused");
    assert_eq!(attrs["usher.code"], "rate_limited");
    assert_eq!(attrs["usher.rate_limit.policies"], "tight");

    // No route: the span is named by the method alone, and has no http.route.
    assert_eq!(call(&gateway, "GET", "/nope/42", &[]).await.status, 404);
    let unmatched = span_where(&collector, |span| {
        attributes(&span.attributes).get("url.path") == Some(&"/nope/42".to_string())
    })
    .await;
    assert_eq!(unmatched.name, "GET");
    let attrs = attributes(&unmatched.attributes);
    assert!(!attrs.contains_key("http.route"), "{attrs:?}");
    assert_eq!(attrs["usher.code"], "route_not_found");
    assert_eq!(attrs["url.path"], "/nope/42");

    // An Idempotency-Key reserved, then its answer replayed at the edge.
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "\"k-1\""),
    ];
    let first = call(&gateway, "POST", "/buy", &headers).await;
    let replay = call(
        &gateway,
        "POST",
        "/buy",
        &[
            headers[0],
            headers[1],
            headers[2],
            ("traceparent", &traceparent("01")),
        ],
    )
    .await;
    assert_eq!((first.status, replay.status), (200, 200));
    let spans = collector.trace(&trace_of(&first), 2).await;
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    let event = server
        .events
        .iter()
        .find(|e| e.name == "usher.idempotency")
        .unwrap();
    assert_eq!(attributes(&event.attributes)["usher.outcome"], "reserved");
    let replayed = collector.trace(TRACE, 1).await;
    let event = replayed[0]
        .events
        .iter()
        .find(|e| e.name == "usher.idempotency")
        .unwrap();
    assert_eq!(attributes(&event.attributes)["usher.outcome"], "replayed");

    // A refused connection, then the retry on the other peer: two client spans.
    let mut retried = None;
    for _ in 0..20 {
        let response = call(&gateway, "GET", "/flaky", &[]).await;
        assert_eq!(response.status, 200);
        let trace = trace_of(&response);
        let deadline = Instant::now() + Duration::from_secs(10);
        let server = loop {
            let spans: Vec<Span> = (collector.spans().into_iter())
                .map(|(s, _)| s)
                .filter(|s| hex(&s.trace_id) == trace)
                .collect();
            if spans.iter().any(|s| kind(s, SpanKind::Server)) {
                break spans;
            }
            assert!(Instant::now() < deadline, "no server span for {trace}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if server.len() == 3 {
            retried = Some((server, response));
            break;
        }
    }
    let (spans, response) = retried.expect("no request met the refusing peer in 20 tries");
    let mut attempts: Vec<_> = spans.iter().filter(|s| kind(s, SpanKind::Client)).collect();
    attempts.sort_by_key(|s| attributes(&s.attributes)["usher.attempt"].clone());
    let (first, second) = (
        attributes(&attempts[0].attributes),
        attributes(&attempts[1].attributes),
    );
    assert_eq!(first["error.type"], "connect_refused");
    assert!(!first.contains_key("http.response.status_code"));
    assert_eq!(attempts[0].status.as_ref().unwrap().code, 2, "error status");
    assert_eq!(second["usher.attempt"], "2");
    assert_eq!(second["http.request.resend_count"], "1");
    assert_eq!(second["http.response.status_code"], "200");
    let upstream_got = traceparent_seen(&response);
    assert_eq!(
        upstream_got[36..52],
        hex(&attempts[1].span_id),
        "the upstream's parent is the attempt it got"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn samplers_the_process_a_route_and_the_caller() {
    let collector = Collector::start(Duration::ZERO).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    // Nothing sampled, except the route that says always_on.
    let setup = Setup {
        env: &[("OTEL_TRACES_SAMPLER", "always_off")],
        ..Setup::default()
    };
    let gateway = start_gateway(collector.addr, &upstream, setup).await;
    let sent = traceparent("01");
    let unsampled = call(&gateway, "GET", "/items/1", &[("traceparent", &sent)]).await;
    let upstream_got = traceparent_seen(&unsampled);
    // Not sampled, still the same trace, with Usher's span as the parent and the flag off.
    assert!(
        upstream_got.starts_with(&format!("00-{TRACE}-")) && upstream_got.ends_with("-00"),
        "{upstream_got}"
    );
    assert_ne!(&upstream_got[36..52], CALLER_SPAN);
    let money = call(
        &gateway,
        "GET",
        "/money",
        &[("traceparent", &traceparent("00"))],
    )
    .await;
    assert_eq!(money.status, 200);
    let spans = collector.trace(TRACE, 2).await;
    assert!(
        spans.iter().all(|s| s.name != "GET /items/:id"),
        "{spans:#?}"
    );
    assert!(spans.iter().any(|s| s.name == "GET /money"));
    let upstream_got = traceparent_seen(&money);
    assert!(upstream_got.ends_with("-01"), "{upstream_got}");
    // A route's ratio of 0 samples nothing, whatever the process samples.
    drop(gateway);
    let collector = Collector::start(Duration::ZERO).await;
    let gateway = start_gateway(collector.addr, &upstream, Setup::default()).await;
    let rare = call(&gateway, "GET", "/rare", &[]).await;
    assert!(traceparent_seen(&rare).ends_with("-00"));
    let sampled = call(&gateway, "GET", "/items/9", &[]).await;
    collector.trace(&traceparent_seen(&sampled)[3..35], 2).await;
    let rare_trace = traceparent_seen(&rare)[3..35].to_string();
    assert!(collector
        .spans()
        .iter()
        .all(|(s, _)| hex(&s.trace_id) != rare_trace));
    drop(gateway);

    // The default sampler follows a caller behind a trusted proxy: its unsampled trace
    // stays unsampled.
    let collector = Collector::start(Duration::ZERO).await;
    let setup = Setup {
        trusted_proxy: true,
        ..Setup::default()
    };
    let gateway = start_gateway(collector.addr, &upstream, setup).await;
    let response = call(
        &gateway,
        "GET",
        "/items/2",
        &[("traceparent", &traceparent("00"))],
    )
    .await;
    assert!(traceparent_seen(&response).ends_with("-00"));
    let sampled = call(&gateway, "GET", "/items/3", &[]).await;
    let upstream_got = traceparent_seen(&sampled);
    collector.trace(&upstream_got[3..35], 2).await;
    assert!(collector
        .spans()
        .iter()
        .all(|(s, _)| hex(&s.trace_id) != TRACE));
    // A malformed traceparent starts a new trace, and its tracestate is not passed on.
    let response = call(
        &gateway,
        "GET",
        "/items/4",
        &[("traceparent", "00-bad"), ("tracestate", "vendor=old")],
    )
    .await;
    assert_eq!(seen(&response, "tracestate"), None);
    let trace = traceparent_seen(&response)[3..35].to_string();
    let spans = collector.trace(&trace, 2).await;
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    assert!(server.parent_span_id.is_empty());
    drop(gateway);

    // Anyone else's flag does not count: the trace continues (same id, the caller's span as
    // the parent) but is sampled as a new one, so no client decides what Usher traces.
    let collector = Collector::start(Duration::ZERO).await;
    let gateway = start_gateway(collector.addr, &upstream, Setup::default()).await;
    let response = call(
        &gateway,
        "GET",
        "/items/5",
        &[("traceparent", &traceparent("00"))],
    )
    .await;
    assert!(traceparent_seen(&response).ends_with("-01"));
    let spans = collector.trace(TRACE, 2).await;
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_cut_off_by_the_deadline_fails_its_attempt() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A service that sends its head, then its body a byte at a time: every read is within
    // the read timeout, the whole answer not within the route's deadline.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall = listener.local_addr().unwrap();
    let service = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                    .await;
                for _ in 0..25 {
                    if stream.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    let collector = Collector::start(Duration::ZERO).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let setup = Setup {
        stall: Some(stall),
        ..Setup::default()
    };
    let gateway = start_gateway(collector.addr, &upstream, setup).await;
    let sent = traceparent("01");
    let _ = request(
        gateway.public,
        "GET",
        "/stall",
        &[("traceparent", &sent)],
        None,
    )
    .await;
    let spans = collector.trace(TRACE, 2).await;
    let attempt = spans.iter().find(|s| kind(s, SpanKind::Client)).unwrap();
    let attrs = attributes(&attempt.attributes);
    assert_eq!(attrs["http.response.status_code"], "200");
    assert_eq!(attrs["error.type"], "deadline");
    let server = spans.iter().find(|s| kind(s, SpanKind::Server)).unwrap();
    // The access log's `error` for the same request.
    assert_eq!(
        attributes(&server.attributes)["usher.code"],
        "upstream_timeout"
    );
    service.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_down_or_slow_changes_no_response_and_drops_are_counted() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let closed = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let slow = Collector::start(Duration::from_secs(3)).await;
    for collector in [closed, slow.addr] {
        let small_queue = [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ];
        let setup = Setup {
            env: &small_queue,
            ..Setup::default()
        };
        let gateway = start_gateway(collector, &upstream, setup).await;
        for i in 0..100 {
            let started = Instant::now();
            let response = call(&gateway, "GET", &format!("/items/{i}"), &[]).await;
            assert_eq!(response.status, 200);
            assert_eq!(response.json()["path"], format!("/items/{i}"));
            // Far below the collector's delay or timeout: nobody waits for it.
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "{:?}",
                started.elapsed()
            );
        }
        let dropped = |metrics: &str| {
            metric_value(metrics, "usher_trace_spans_total{outcome=\"queue_full\"}").unwrap_or(0.0)
        };
        assert!(
            eventually(Duration::from_secs(5), || async {
                dropped(&gateway.metrics().await) > 0.0
            })
            .await,
            "{collector}: no drop counted"
        );
        if collector == closed {
            let failed = "usher_trace_spans_total{outcome=\"export_failed\"}";
            assert!(
                eventually(Duration::from_secs(10), || async {
                    metric_value(&gateway.metrics().await, failed).unwrap_or(0.0) > 0.0
                })
                .await
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_still_queued_are_exported_at_shutdown() {
    let collector = Collector::start(Duration::ZERO).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    // Batches would wait a minute: only the exit's flush can send this one.
    let setup = Setup {
        env: &[("OTEL_BSP_SCHEDULE_DELAY", "60000")],
        ..Setup::default()
    };
    let mut gateway = start_gateway(collector.addr, &upstream, setup).await;
    let response = call(
        &gateway,
        "GET",
        "/items/7",
        &[("traceparent", &traceparent("01"))],
    )
    .await;
    assert_eq!(response.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(collector.spans().is_empty());
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some());
    collector.trace(TRACE, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_traces_endpoint_is_used_as_given() {
    // The signal's own endpoint, as written, over the base one (which would add /v1/traces).
    let collector = Collector::start_at(Duration::ZERO, "/custom/traces").await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let endpoint = format!("http://{}/custom/traces", collector.addr);
    let setup = Setup {
        env: &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)],
        ..Setup::default()
    };
    let unused = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gateway = start_gateway(unused, &upstream, setup).await;
    let response = call(
        &gateway,
        "GET",
        "/items/8",
        &[("traceparent", &traceparent("01"))],
    )
    .await;
    assert_eq!(response.status, 200);
    collector.trace(TRACE, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_usher_cannot_use_stop_it_at_start_and_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routes.yaml");
    let public = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let body = "upstreams:\n  svc: { targets: [\"127.0.0.1:9\"] }\nroutes:\n  - { name: r, match: { path: /r }, upstream: svc, public: true }\n";
    std::fs::write(
        &config,
        Gateway::document(public, admin, "threads: 1", body),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER: \"sometimes\""),
        "{stderr}"
    );
}
