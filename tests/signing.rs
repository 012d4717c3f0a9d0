//! Usher's signature on what it forwards, through the real gateway: an upstream with
//! `sign_requests` gets each request signed (RFC 9421, Ed25519) over its method, path,
//! query, body digest and the identity Usher injected, and the `http-message-signatures`
//! package (an implementation Usher did not write) verifies it against the keys Usher
//! publishes on its admin listener; a changed identity or body no longer verifies, and a
//! client's own signature headers never reach the service.

mod common;

use common::*;
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef-signing";

fn bearer(subject: &str) -> String {
    let now = unix_now();
    format!(
        "Bearer {}",
        hs256_jwt(
            SECRET,
            &json!({"sub": subject, "tenant_id": "t1", "roles": ["admin"], "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
        )
    )
}

/// The verdict of the Python verifier on what the upstream received.
fn verify(echoed: &serde_json::Value, body: &str, jwks: &serde_json::Value) -> serde_json::Value {
    let message = json!({
        "method": echoed["method"],
        "path": echoed["path"],
        "headers": echoed["headers"],
        "body": body,
        "jwks": jwks,
    });
    python_json("verify_signature.py", &[], message.to_string().as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn what_usher_forwards_verifies_with_its_published_keys() {
    let upstream = EchoServer::start("minting").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let key = |name| ed25519_keys(dir.path(), name).0.display().to_string();
    let (old, new) = (key("old"), key("new"));
    let gateway = Gateway::start_h2c(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
signing:
  keys: [{{ id: usher-old, private_key_file: "{old}" }}, {{ id: usher-new, private_key_file: "{new}" }}]
  active: usher-new
upstreams:
  minting: {{ targets: ["{}"], sign_requests: true, health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: mint, match: {{ path: /mint }}, upstream: minting, max_body: 64KiB }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await;
    let jwks = get(gateway.admin, "/signing-keys").await.unwrap().json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["usher-old", "usher-new"], "both keys published");

    let body = r#"{"venueId":"7","ticketIds":["a","b"]}"#;
    let who = bearer("alice");
    let response = request(
        gateway.public,
        "POST",
        "/mint/batch?dry=1",
        &[
            ("authorization", who.as_str()),
            ("content-type", "application/json"),
            ("signature", "forged=:AAAA:"),
            (
                "signature-input",
                "forged=(\"@method\");created=1;keyid=\"usher-new\"",
            ),
        ],
        Some(body.as_bytes()),
    )
    .await
    .unwrap();
    let echoed = response.json();
    let verdict = verify(&echoed, body, &jwks);
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["keyid"], "usher-new");
    assert_eq!(verdict["body_checked"], true, "{verdict}");
    for covered in [
        "\"@method\"",
        "\"@path\"",
        "\"@query\"",
        "\"content-digest\"",
        "\"x-tenant-id\"",
        "\"x-user-id\"",
        "\"x-user-roles\"",
        "\"x-request-id\"",
    ] {
        assert!(
            verdict["covered"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == covered),
            "{covered} not covered: {verdict}"
        );
    }
    assert!(
        !echoed["headers"]["signature"][0]
            .as_str()
            .unwrap()
            .starts_with("forged"),
        "the client's signature never reaches the service"
    );

    // What a signature protects: another tenant, or another body, fails.
    let mut other_tenant = echoed.clone();
    other_tenant["headers"]["x-tenant-id"] = json!(["t2"]);
    assert_eq!(verify(&other_tenant, body, &jwks)["ok"], false);
    let changed = body.replace("\"b\"", "\"c\"");
    assert_eq!(verify(&echoed, &changed, &jwks)["ok"], false);

    // A request without a body is signed too, without a digest.
    let read = request(
        gateway.public,
        "GET",
        "/mint/status",
        &[("authorization", who.as_str())],
        None,
    )
    .await
    .unwrap();
    let verdict = verify(&read.json(), "", &jwks);
    assert_eq!(verdict["ok"], true, "{verdict}");
}
