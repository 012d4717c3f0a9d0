//! RFC 9421 message signatures as a credential, through the real gateway, with requests
//! signed by the `http-message-signatures` package (tests/support/sign_request.py), on a
//! real redis-server shared by two replicas: an HMAC-SHA256 and an Ed25519 key each
//! authenticate as the principal they map to; a changed body, path, query or covered
//! header, a stale, future or expired signature, a missing required component, an unknown
//! key, and a nonce used before (on the other replica) are refused; Redis gone fails closed
//! for nonces.

mod common;

use common::*;
use serde_json::json;

const HMAC_SECRET: &str = "a partner's shared secret, 40 bytes long!";

/// The headers the package's signer sends for `spec`.
fn signed(spec: serde_json::Value) -> Vec<(String, String)> {
    let headers = python_json("sign_request.py", &[], spec.to_string().as_bytes());
    headers
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name.to_lowercase(), value.as_str().unwrap().to_string()))
        .collect()
}

async fn send(
    gateway: &Gateway,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Response {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = (!body.is_empty()).then_some(body.as_bytes());
    request(gateway.public, method, path, &headers, body)
        .await
        .unwrap()
}

async fn replica(
    upstream: &EchoServer,
    dir: &tempfile::TempDir,
    redis: &str,
    public_key: &str,
) -> Gateway {
    let secret = dir.path().join("partner.secret");
    std::fs::write(&secret, HMAC_SECRET).unwrap();
    Gateway::start_h2c(&format!(
        r#"
{redis}
authentication:
  signatures:
    keys:
      - {{ id: partner-acme, hmac_secret_file: "{}", tenant: acme, roles: [partner] }}
      - {{ id: svc-reports, ed25519_public_key_file: "{public_key}", tenant: platform, roles: [service], subject: reports }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: partner, match: {{ path: /partner }}, upstream: svc, max_body: 16KiB, auth: {{ signatures: true, roles: [partner, service] }} }}
  - {{ name: strict, match: {{ path: /strict }}, upstream: svc, max_body: 16KiB, auth: {{ signatures: true, signature_covers: [content-type], roles: [partner] }} }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_requests_authenticate_as_their_key() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = ed25519_keys(dir.path(), "reports");
    let settings = redis.section(", timeout: 1s");
    let public = public.display().to_string();
    let one = replica(&upstream, &dir, &settings, &public).await;
    let two = replica(&upstream, &dir, &settings, &public).await;
    let body = r#"{"report":"daily"}"#;
    let t = unix_now();
    let hmac = |path: &str, covered: serde_json::Value, extra: serde_json::Value| {
        let mut spec = json!({
            "method": "POST", "url": format!("http://usher{path}"),
            "headers": {"content-type": "application/json"}, "body": body,
            "key_id": "partner-acme", "alg": "hmac-sha256", "key": HMAC_SECRET,
            "covered": covered, "created": t,
        });
        for (name, value) in extra.as_object().unwrap() {
            spec[name] = value.clone();
        }
        signed(spec)
    };
    let all = json!([
        "@method",
        "@path",
        "@query",
        "content-digest",
        "content-type"
    ]);

    // An HMAC-signed POST: the partner's principal, the signature kept at the edge.
    let headers = hmac("/partner/sync?day=1", all.clone(), json!({}));
    let response = send(&one, "POST", "/partner/sync?day=1", &headers, body).await;
    assert_eq!(response.status, 200, "{}", response.error_code());
    let echoed = response.json();
    assert_eq!(echoed["headers"]["x-tenant-id"], json!(["acme"]));
    assert_eq!(
        echoed["headers"]["x-tenant-source"],
        json!(["http-signature"])
    );
    assert_eq!(
        echoed["headers"]["x-user-id"],
        json!(["signature:partner-acme"])
    );
    assert_eq!(echoed["headers"].get("signature"), None);

    // An Ed25519-signed GET: the service's principal.
    let get = signed(json!({
        "method": "GET", "url": "http://usher/partner/reports", "key_id": "svc-reports",
        "alg": "ed25519", "key": private.display().to_string(),
        "covered": ["@method", "@path", "@query"], "created": t,
    }));
    let response = send(&two, "GET", "/partner/reports", &get, "").await;
    assert_eq!(response.status, 200, "{}", response.error_code());
    assert_eq!(response.json()["headers"]["x-user-id"], json!(["reports"]));
    assert_eq!(upstream.hits(), 2);

    // Refused, and never forwarded: a changed body, path, query or covered header.
    let unauthenticated =
        |r: &Response| (r.status, r.error_code()) == (401, "unauthenticated".to_string());
    assert!(unauthenticated(
        &send(
            &one,
            "POST",
            "/partner/sync?day=1",
            &headers,
            r#"{"report":"all!!"}"#
        )
        .await
    ));
    assert!(unauthenticated(
        &send(&one, "POST", "/partner/other?day=1", &headers, body).await
    ));
    assert!(unauthenticated(
        &send(&one, "POST", "/partner/sync?day=2", &headers, body).await
    ));
    let mut retyped = headers.clone();
    for (name, value) in &mut retyped {
        if name == "content-type" {
            *value = "text/plain".into();
        }
    }
    assert!(unauthenticated(
        &send(&one, "POST", "/partner/sync?day=1", &retyped, body).await
    ));
    // Stale, early, expired; a required component left out; a key Usher does not know.
    for extra in [
        json!({"created": t - 400}),
        json!({"created": t + 400}),
        json!({"created": t - 10, "expires": t - 5}),
    ] {
        let headers = hmac("/partner/sync", all.clone(), extra.clone());
        assert!(
            unauthenticated(&send(&one, "POST", "/partner/sync", &headers, body).await),
            "{extra}"
        );
    }
    let partial = hmac(
        "/partner/sync",
        json!(["@method", "@path", "content-digest"]),
        json!({}),
    );
    assert!(unauthenticated(
        &send(&one, "POST", "/partner/sync", &partial, body).await
    ));
    // A route that requires more: content-type must be covered there.
    let loose = hmac(
        "/strict/sync",
        json!(["@method", "@path", "@query", "content-digest"]),
        json!({}),
    );
    assert!(unauthenticated(
        &send(&one, "POST", "/strict/sync", &loose, body).await
    ));
    let strict = hmac("/strict/sync", all.clone(), json!({}));
    assert_eq!(
        send(&one, "POST", "/strict/sync", &strict, body)
            .await
            .status,
        200
    );
    let stranger = hmac("/partner/sync", all.clone(), json!({"key_id": "someone"}));
    assert!(unauthenticated(
        &send(&one, "POST", "/partner/sync", &stranger, body).await
    ));
    assert_eq!(
        upstream.hits(),
        3,
        "only the strict route's good request went through"
    );

    // A nonce is single use across replicas.
    let once = hmac("/partner/sync", all.clone(), json!({"nonce": "n-1"}));
    assert_eq!(
        send(&one, "POST", "/partner/sync", &once, body)
            .await
            .status,
        200
    );
    assert!(unauthenticated(
        &send(&two, "POST", "/partner/sync", &once, body).await
    ));
    assert_eq!(upstream.hits(), 4);
    let log = one.stderr() + &two.stderr();
    for reason in [
        "signature_mismatch",
        "signature_stale",
        "signature_incomplete",
        "signature_unknown_key",
        "signature_replayed",
        "signature_digest_mismatch",
    ] {
        assert!(log.contains(reason), "no {reason} event");
    }

    // Redis gone: a nonce cannot be checked, so the request is refused (503), never 500.
    redis.kill();
    let later = hmac("/partner/sync", all.clone(), json!({"nonce": "n-2"}));
    let down = send(&one, "POST", "/partner/sync", &later, body).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "auth_unavailable")
    );
}
