//! Webhook verification through the real gateway, with deliveries signed by
//! implementations Usher did not write (the `standardwebhooks` package, Stripe's scheme as
//! its own library accepts it, GitHub's documented HMAC; tests/support/sign_webhook.py),
//! on a real redis-server shared by two replicas: a good delivery arrives byte for byte;
//! a tampered body or signature, a stale or future timestamp, or an unknown secret never
//! reaches the service; a replay is refused on the other replica; a retry after the
//! service failed goes through; two secrets at once rotate; Redis gone fails closed.

mod common;

use common::*;

const STRIPE_OLD: &str = "whsec_old0123456789abcdefghijklmnop";
const STRIPE_NEW: &str = "whsec_new0123456789abcdefghijklmnop";
const STANDARD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GITHUB: &str = "a GitHub webhook secret, 32 bytes";

type Headers = Vec<(String, String)>;

/// The headers `scheme`'s own signer puts on `body`.
fn signed(scheme: &str, secret: &str, timestamp: u64, delivery: &str, body: &[u8]) -> Headers {
    let timestamp = timestamp.to_string();
    let args = [scheme, secret, timestamp.as_str(), delivery];
    let headers = python_json("sign_webhook.py", &args, body);
    headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
        .collect()
}

async fn deliver(
    gateway: &Gateway,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response {
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    all.push(("content-type", "application/json"));
    request(gateway.public, "POST", path, &all, Some(body))
        .await
        .unwrap()
}

async fn replica(upstream: &EchoServer, dir: &tempfile::TempDir, redis: &str) -> Gateway {
    let file = |name: &str, secret: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        path.display().to_string()
    };
    let (old, new) = (
        file("stripe-old", STRIPE_OLD),
        file("stripe-new", STRIPE_NEW),
    );
    let (standard, github) = (file("standard", STANDARD), file("github", GITHUB));
    Gateway::start_h2c(&format!(
        r#"
{redis}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: stripe, match: {{ path: /stripe }}, upstream: svc, public: true, max_body: 64KiB,
      webhook: {{ scheme: stripe, secrets: [{{ file: "{old}" }}, {{ file: "{new}" }}] }} }}
  - {{ name: stripe-too, match: {{ path: /stripe-too }}, upstream: svc, public: true, max_body: 64KiB,
      webhook: {{ scheme: stripe, secrets: [{{ file: "{new}" }}, {{ file: "{old}" }}] }} }}
  - {{ name: standard, match: {{ path: /standard }}, upstream: svc, public: true, max_body: 64KiB,
      webhook: {{ scheme: standard, secrets: [{{ file: "{standard}" }}] }} }}
  - {{ name: github, match: {{ path: /github }}, upstream: svc, public: true, max_body: 64KiB,
      webhook: {{ scheme: github, secrets: [{{ file: "{github}" }}] }} }}
"#,
        upstream.addr
    ))
    .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_signatures_are_verified_before_the_service_sees_anything() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("payments").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = redis.section(", timeout: 1s");
    let one = replica(&upstream, &dir, &settings).await;
    let two = replica(&upstream, &dir, &settings).await;
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"amount":4200}}"#;
    let t = unix_now();

    // Each scheme, signed by its own implementation, arrives byte for byte.
    let cases = [
        ("/stripe", signed("stripe", STRIPE_NEW, t, "-", body)),
        ("/standard", signed("standard", STANDARD, t, "msg_1", body)),
        ("/github", signed("github", GITHUB, t, "delivery-1", body)),
    ];
    for (path, headers) in &cases {
        let response = deliver(&one, path, headers, body).await;
        assert_eq!(response.status, 200, "{path}: {}", response.error_code());
        assert_eq!(response.json()["body_sha256"], sha256_hex(body), "{path}");
    }
    assert_eq!(upstream.hits(), 3);

    // Rotation: the old Stripe secret still verifies; a secret not configured does not.
    let old = signed("stripe", STRIPE_OLD, t, "-", b"{\"n\":2}");
    assert_eq!(
        deliver(&one, "/stripe", &old, b"{\"n\":2}").await.status,
        200
    );
    let unknown = signed(
        "stripe",
        "whsec_not0123456789abcdefghijklmnop",
        t,
        "-",
        b"{\"n\":3}",
    );
    assert_eq!(
        deliver(&one, "/stripe", &unknown, b"{\"n\":3}")
            .await
            .error_code(),
        "webhook_signature_invalid"
    );
    assert_eq!(upstream.hits(), 4);

    // Tampered, stale, early, unsigned: 401, and the service sees none of them.
    let fresh = signed("standard", STANDARD, t, "msg_2", body);
    let mut tampered_body = body.to_vec();
    tampered_body[60] = b'9';
    let mut tampered_signature = fresh.clone();
    for (name, value) in &mut tampered_signature {
        if name == "webhook-signature" {
            value.replace_range(5..6, if &value[5..6] == "A" { "B" } else { "A" });
        }
    }
    let stale = signed("standard", STANDARD, t - 400, "msg_3", body);
    let early = signed("standard", STANDARD, t + 400, "msg_4", body);
    let refused: [(&str, &Headers, &[u8]); 5] = [
        ("tampered body", &fresh, &tampered_body),
        ("tampered signature", &tampered_signature, body),
        ("stale", &stale, body),
        ("future", &early, body),
        ("unsigned", &Vec::new(), body),
    ];
    for (what, headers, sent) in refused {
        let response = deliver(&two, "/standard", headers, sent).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (401, "webhook_signature_invalid"),
            "{what}"
        );
    }
    assert_eq!(upstream.hits(), 4);

    // A delivery replayed on the other replica is refused; one whose forwarding failed
    // upstream comes through on the provider's retry.
    let (path, headers) = &cases[0];
    let replayed = deliver(&two, path, headers, body).await;
    assert_eq!(
        (replayed.status, replayed.error_code().as_str()),
        (409, "webhook_replayed")
    );
    // Padding the header with another v1, or upper-casing the hex, is the same delivery;
    // so is the same delivery on another route taking the same provider's deliveries.
    let (timestamp, v1) = headers[0].1.split_once(",v1=").unwrap();
    let padded: Headers = vec![(
        "stripe-signature".into(),
        format!("{timestamp},v1=00,v1={}", v1.to_uppercase()),
    )];
    assert_eq!(
        deliver(&two, path, &padded, body).await.error_code(),
        "webhook_replayed"
    );
    assert_eq!(
        deliver(&two, "/stripe-too", headers, body)
            .await
            .error_code(),
        "webhook_replayed"
    );
    let again = signed("standard", STANDARD, t, "msg_1", body);
    assert_eq!(
        deliver(&two, "/standard", &again, body).await.error_code(),
        "webhook_replayed"
    );
    upstream.set_status(500);
    // GitHub signs only the body: it names the delivery, whatever X-GitHub-Delivery says.
    let push = br#"{"ref":"refs/heads/main","after":"2"}"#;
    let failing = signed("github", GITHUB, t, "delivery-2", push);
    assert_eq!(deliver(&one, "/github", &failing, push).await.status, 500);
    upstream.set_status(200);
    assert_eq!(deliver(&two, "/github", &failing, push).await.status, 200);
    let renamed = signed("github", GITHUB, t, "delivery-2b", push);
    assert_eq!(
        deliver(&one, "/github", &renamed, push).await.error_code(),
        "webhook_replayed"
    );
    assert_eq!(upstream.hits(), 6);

    let metrics = one.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_signature_verifications_total{result="valid",route="stripe",scheme="stripe"}"#
        ),
        Some(2.0),
        "{metrics}"
    );

    // Redis gone: deliveries cannot be recorded, so they are refused (the provider
    // retries later), never a 500, never forwarded unrecorded.
    redis.kill();
    let third = br#"{"ref":"refs/heads/main","after":"3"}"#;
    let later = signed("github", GITHUB, t, "delivery-3", third);
    let down = deliver(&one, "/github", &later, third).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "webhook_unavailable")
    );
    assert_eq!(upstream.hits(), 6);
}
