//! Request validation through the real gateway: a body schema (a file beside routes.yaml,
//! compiled by the `jsonschema` crate) and path-parameter patterns; refused requests never
//! reach the upstream, and refusals name where, never what.

mod common;

use common::*;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["eventId", "seat"],
  "additionalProperties": false,
  "properties": {
    "eventId": { "type": "string", "pattern": "^evt-[0-9]+$" },
    "seat": { "type": "integer", "minimum": 1 },
    "note": { "type": "string", "maxLength": 20 }
  }
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn bodies_and_parameters_are_checked_before_the_upstream() {
    let upstream = EchoServer::start("tickets").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("purchase.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    let gateway = Gateway::start(&format!(
        r#"
upstreams:
  tickets: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - name: purchase
    match: {{ path: /events/:eventId/purchase }}
    upstream: tickets
    public: true
    max_body: 8KiB
    validate: {{ body_schema: "{}", params: {{ eventId: "evt-[0-9]{{1,9}}" }} }}
"#,
        upstream.addr,
        schema.display()
    ))
    .await;
    let post = |path: &'static str, content_type: &'static str, body: &'static str| {
        let public = gateway.public;
        async move {
            request(
                public,
                "POST",
                path,
                &[("content-type", content_type)],
                Some(body.as_bytes()),
            )
            .await
            .unwrap()
        }
    };
    let good = post(
        "/events/evt-7/purchase",
        "application/json",
        r#"{"eventId":"evt-7","seat":3}"#,
    )
    .await;
    assert_eq!(good.status, 200);
    assert_eq!(upstream.hits(), 1);

    let cases = [
        (
            "/events/evt-7/purchase",
            "application/json",
            "{\"seat\":",
            400,
            "malformed_json",
        ),
        (
            "/events/evt-7/purchase",
            "text/plain",
            r#"{"eventId":"evt-7","seat":3}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "/events/evt-7/purchase",
            "application/json",
            r#"{"eventId":"evt-7","seat":0,"note":"secret-value-not-echoed"}"#,
            422,
            "invalid_body",
        ),
        (
            "/events/7/purchase",
            "application/json",
            r#"{"eventId":"evt-7","seat":3}"#,
            400,
            "invalid_parameter",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let response = post(path, content_type, body).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (status, code),
            "{path} {body}"
        );
    }
    // A bad parameter is refused before the body is read: an oversized chunked body (which
    // the body stage would refuse with 413 once read) does not matter.
    let chunk = "x".repeat(9 * 1024);
    let raw = format!(
        "POST /events/7/purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let answer = raw_request(gateway.public, raw.as_bytes()).await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(answer.contains("invalid_parameter"), "{answer}");
    assert_eq!(
        upstream.hits(),
        1,
        "no refused request reached the upstream"
    );

    // A violation names its JSON pointers, never the values.
    let response = post(
        "/events/evt-7/purchase",
        "application/json",
        r#"{"eventId":"evt-7","seat":0,"note":"secret-value-not-echoed-at-all"}"#,
    )
    .await;
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("/seat") && message.contains("/note"),
        "{message}"
    );
    assert!(!message.contains("secret-value"), "{message}");
    let metrics = gateway.metrics().await;
    let series = r#"usher_validation_refusals_total{code="invalid_body",route="purchase"}"#;
    assert_eq!(metric_value(&metrics, series), Some(2.0), "{metrics}");
}

#[test]
fn a_schema_that_cannot_be_read_or_used_is_an_error_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"type": "no-such-type"}"#,
    )
    .unwrap();
    let config = dir.path().join("routes.yaml");
    std::fs::write(
        &config,
        "listeners:\n  public: { address: \"127.0.0.1:1\" }\n  admin: { address: \"127.0.0.1:2\" }\nupstreams: { u: { targets: [\"u:1\"] } }\nroutes:\n  - { name: a, match: { path: /a }, upstream: u, public: true, max_body: 1KiB, validate: { body_schema: missing.json } }\n  - { name: b, match: { path: /b }, upstream: u, public: true, max_body: 1KiB, validate: { body_schema: broken.json } }\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["check", "--strict"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("routes[0] (a).validate.body_schema: cannot read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[1] (b).validate.body_schema:")
            && stderr.contains("not a usable JSON Schema"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_schema_is_read_when_the_directory_changes() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let schemas = tempfile::tempdir().unwrap();
    let schema = schemas.path().join("schema.json");
    std::fs::write(&schema, r#"{"type": "object"}"#).unwrap();
    let gateway = Gateway::start(&format!(
        r#"
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: r, match: {{ path: /r }}, upstream: svc, public: true, max_body: 1KiB, validate: {{ body_schema: "{}" }} }}
"#,
        upstream.addr,
        schema.display()
    ))
    .await;
    let post = |body: &'static str| {
        let public = gateway.public;
        async move {
            request(
                public,
                "POST",
                "/r",
                &[("content-type", "application/json")],
                Some(body.as_bytes()),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(post("[]").await, 422);
    // As a ConfigMap update does: the schema changes and the directory is swapped, while
    // routes.yaml's bytes stay the same.
    std::fs::write(&schema, r#"{"type": "array"}"#).unwrap();
    let dir = gateway.path().parent().unwrap().to_path_buf();
    std::fs::write(dir.join("..swap"), "").unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            post("[]").await == 200
        })
        .await
    );
}
