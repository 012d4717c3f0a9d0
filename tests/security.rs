//! Edge security through the real gateway, with an echo upstream that records what it got.
//! Every rejection also asserts that the upstream never saw the request.

mod common;

use base64::Engine;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://auth.test";
const AUDIENCE: &str = "api";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn generate() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hs.secret"), SECRET).unwrap();
        for (name, args) in [
            (
                "rs",
                vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
            (
                "es",
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
            ("ed", vec!["-algorithm", "ed25519"]),
        ] {
            let key = dir.path().join(format!("{name}.key"));
            let ok = Command::new("openssl")
                .arg("genpkey")
                .args(&args)
                .arg("-out")
                .arg(&key)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success());
            let ok = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(dir.path().join(format!("{name}.pub")))
                .status()
                .unwrap();
            assert!(ok.success());
        }
        Keys { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn sign(&self, kid: &str, algorithm: Algorithm, claims: &Value) -> String {
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 => EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.pem("rs.key")).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.pem("es.key")).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.pem("ed.key")).unwrap(),
            other => panic!("no test key for {other:?}"),
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_string());
        sign_jwt(header, &key, claims)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "sub": "user-1", "tenant_id": "tenant-a", "roles": ["customer"], "venue_ids": ["v7"],
        "type": "access", "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600,
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose header and claims are exactly the JSON texts given (duplicate members
/// included), validly signed with the HS256 key `hs`.
fn signed_text(header: &str, claims: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

/// The valid claims as JSON text, with `extra` members (`"name": value, ...`) appended.
fn claims_text(extra: &str) -> String {
    let text = claims().to_string();
    format!("{}, {extra}}}", &text[..text.len() - 1])
}

/// A token with an arbitrary header, signed (or not) by the caller's choice.
fn raw_token(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn config(keys: &Keys, upstream: &EchoServer, extra_keys: &str, identity: &str) -> String {
    let api_hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(b"partner-key-1")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(
        keys.path("api-keys.yaml"),
        format!("keys:\n  - {{ name: acme, sha256: \"{api_hash}\", tenant: acme, roles: [partner], tier: premium }}\n"),
    )
    .unwrap();
    format!(
        r#"
authentication:
  jwt:
    issuer: "{ISSUER}"
    audiences: ["{AUDIENCE}"]
    leeway: 30s
    max_lifetime: 1h
    keys:
      - {{ kid: hs, algorithm: HS256, secret_file: "{hs}" }}
      - {{ kid: rs, algorithm: RS256, public_key_file: "{rs}" }}
      - {{ kid: es, algorithm: ES256, public_key_file: "{es}" }}
      - {{ kid: ed, algorithm: EdDSA, public_key_file: "{ed}" }}
{extra_keys}
  api_keys: {{ file: "{api}" }}
{identity}
upstreams:
  svc: {{ targets: ["{upstream}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: private, match: {{ path: /private }}, upstream: svc }}
  - {{ name: open, match: {{ path: /public }}, upstream: svc, public: true }}
  - {{ name: admin, match: {{ path: /admin }}, upstream: svc, auth: {{ roles: [admin] }} }}
  - {{ name: venue, match: {{ path: /venues/:venueId }}, upstream: svc, auth: {{ roles: [customer, admin], venue_param: venueId, admin_roles: [admin] }} }}
  - {{ name: partner, match: {{ path: /partner }}, upstream: svc, auth: {{ api_keys: true }} }}
  - {{ name: query-token, match: {{ path: /download }}, upstream: svc, auth: {{ token_from: [header, "query:access_token"], forward_credential: true }} }}
  - {{ name: socket, match: {{ path: /socket }}, upstream: svc, public: true, websocket: true }}
  - {{ name: cookie-token, match: {{ path: /web }}, upstream: svc, auth: {{ token_from: ["cookie:access_token", "query:access_token"], api_keys: true, forward_credential: true }} }}
"#,
        hs = keys.path("hs.secret").display(),
        rs = keys.path("rs.pub").display(),
        es = keys.path("es.pub").display(),
        ed = keys.path("ed.pub").display(),
        api = keys.path("api-keys.yaml").display(),
        upstream = upstream.addr,
    )
}

async fn get_with(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    request(gateway.public, "GET", path, headers, None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_attack_classes_are_refused_and_valid_tokens_pass() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(&keys, &upstream, "", "")).await;

    // Valid tokens of every configured algorithm pass, with identity injected.
    for (kid, algorithm) in [
        ("hs", Algorithm::HS256),
        ("rs", Algorithm::RS256),
        ("es", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ] {
        let response = bearer_get(
            &gateway,
            "/private/x",
            &keys.sign(kid, algorithm, &claims()),
        )
        .await;
        assert_eq!(
            response.status,
            200,
            "{kid}: {}",
            String::from_utf8_lossy(&response.body)
        );
        let headers = &response.json()["headers"];
        assert_eq!(headers["x-tenant-id"][0], "tenant-a");
        assert_eq!(headers["x-tenant-source"][0], "jwt");
        assert_eq!(headers["x-user-id"][0], "user-1");
        assert_eq!(headers["x-user-roles"][0], "customer");
    }

    let rs_public = keys.pem("rs.pub");
    let hs_confusion = encode(
        &Header {
            kid: Some("rs".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims(),
        &EncodingKey::from_secret(&rs_public),
    )
    .unwrap();
    let valid = keys.sign("hs", Algorithm::HS256, &claims());
    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged_claims = b64(with(claims(), json!({"tenant_id": "tenant-b"}))
        .to_string()
        .as_bytes());
    parts[1] = &forged_claims;
    let tampered = parts.join(".");
    let signature = valid.rsplit('.').next().unwrap();

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            raw_token(json!({"alg": "none", "typ": "JWT"}), &claims(), ""),
        ),
        (
            "alg None",
            raw_token(json!({"alg": "None", "kid": "hs"}), &claims(), ""),
        ),
        (
            "alg NONE",
            raw_token(json!({"alg": "NONE"}), &claims(), signature),
        ),
        (
            "alg nOnE",
            raw_token(json!({"alg": "nOnE", "kid": "hs"}), &claims(), ""),
        ),
        ("HS/RS confusion", hs_confusion),
        (
            "wrong algorithm for the key",
            keys.sign("hs", Algorithm::HS384, &claims()),
        ),
        ("tampered claims", tampered),
        (
            "expired",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"exp": now() - 120, "iat": now() - 600})),
            ),
        ),
        (
            "not yet valid",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"nbf": now() + 300})),
            ),
        ),
        (
            "far future",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"exp": now() + 10 * 86400})),
            ),
        ),
        (
            "far future without iat",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"exp": now() + 10 * 86400, "iat": null})),
            ),
        ),
        (
            "issued in the future",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"iat": now() + 3600, "exp": now() + 3700})),
            ),
        ),
        (
            "missing exp",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"exp": null})),
            ),
        ),
        (
            "wrong issuer",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "missing issuer",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"iss": null})),
            ),
        ),
        (
            "wrong audience",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"aud": "other"})),
            ),
        ),
        (
            "missing subject",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"sub": null})),
            ),
        ),
        (
            "refresh token",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"type": "refresh"})),
            ),
        ),
        (
            "missing token type",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"type": null})),
            ),
        ),
        (
            "missing tenant",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"tenant_id": null})),
            ),
        ),
        (
            "empty tenant",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"tenant_id": ""})),
            ),
        ),
        (
            "numeric tenant",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"tenant_id": 7})),
            ),
        ),
        (
            "unknown kid",
            keys.sign("nope", Algorithm::HS256, &claims()),
        ),
        (
            "hostile kid",
            keys.sign("../../../../etc/passwd", Algorithm::HS256, &claims()),
        ),
        (
            "huge kid",
            keys.sign(&"k".repeat(4000), Algorithm::HS256, &claims()),
        ),
        (
            "jku header",
            raw_token(
                json!({"alg": "HS256", "kid": "hs", "jku": "https://evil.test/jwks"}),
                &claims(),
                signature,
            ),
        ),
        (
            "embedded jwk",
            raw_token(
                json!({"alg": "RS256", "kid": "rs", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
                &claims(),
                signature,
            ),
        ),
        (
            "x5u header",
            raw_token(
                json!({"alg": "HS256", "kid": "hs", "x5u": "https://evil.test/cert"}),
                &claims(),
                signature,
            ),
        ),
        (
            "crit naming an unknown extension",
            signed_text(
                r#"{"alg":"HS256","kid":"hs","crit":["exp-ext"],"exp-ext":1}"#,
                &claims().to_string(),
            ),
        ),
        (
            "empty crit",
            signed_text(
                r#"{"alg":"HS256","kid":"hs","crit":[]}"#,
                &claims().to_string(),
            ),
        ),
        (
            "crit b64 false",
            signed_text(
                r#"{"alg":"HS256","kid":"hs","crit":["b64"],"b64":false}"#,
                &claims().to_string(),
            ),
        ),
        (
            "duplicate kid",
            signed_text(
                r#"{"alg":"HS256","kid":"hs","kid":"hs"}"#,
                &claims().to_string(),
            ),
        ),
        (
            "duplicate roles",
            signed_text(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &claims_text(r#""roles":["admin"]"#),
            ),
        ),
        (
            "duplicate tenant",
            signed_text(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &claims_text(r#""tenant_id":"tenant-b""#),
            ),
        ),
        (
            "duplicate type",
            signed_text(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &claims_text(r#""type":"access""#),
            ),
        ),
        (
            "duplicate exp",
            signed_text(
                r#"{"alg":"HS256","kid":"hs"}"#,
                &claims_text(&format!(r#""exp":{}"#, now() + 60)),
            ),
        ),
        (
            "CR LF in the subject",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"sub": "user\r\nx-tenant-id: evil"})),
            ),
        ),
        (
            "NUL in the tenant",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"tenant_id": "tenant\u{0}a"})),
            ),
        ),
        (
            "DEL in a role",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"roles": ["cust\u{7f}omer"]})),
            ),
        ),
        (
            "a comma in a role",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"roles": ["customer,admin"]})),
            ),
        ),
        (
            "non-ASCII tenant",
            keys.sign(
                "hs",
                Algorithm::HS256,
                &with(claims(), json!({"tenant_id": "t\u{e9}nant"})),
            ),
        ),
        ("garbage", "not.a.token".to_string()),
        ("empty", String::new()),
    ];
    let hits = upstream.hits();
    for (name, token) in &attacks {
        let response = bearer_get(&gateway, "/private/x", token).await;
        assert_eq!(
            response.status,
            401,
            "{name}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.error_code(), "unauthenticated", "{name}");
        let body = String::from_utf8_lossy(&response.body);
        assert!(
            !body.contains(token.as_str()) || token.is_empty(),
            "{name}: the token is echoed"
        );
    }
    // Missing credentials, other schemes, and a query token where the route did not opt in.
    for headers in [
        vec![],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("cookie", "access_token=x")],
    ] {
        assert_eq!(get_with(&gateway, "/private/x", &headers).await.status, 401);
    }
    assert_eq!(
        gateway
            .get(&format!("/private/x?access_token={valid}"))
            .await
            .status,
        401
    );
    assert_eq!(
        upstream.hits(),
        hits,
        "no rejected request reached the upstream"
    );

    // A route that opts in accepts the query token.
    assert_eq!(
        gateway
            .get(&format!("/download/f?access_token={valid}"))
            .await
            .status,
        200
    );

    // Attack classes are counted, the alarming ones at high severity; tokens never reach logs.
    let metrics = gateway.metrics().await;
    for (reason, severity) in [
        ("alg_none", "high"),
        ("wrong_algorithm", "high"),
        ("bad_signature", "high"),
        ("untrusted_key_reference", "high"),
        ("expired", "low"),
        ("missing_credentials", "low"),
    ] {
        let series =
            format!(r#"usher_security_events_total{{reason="{reason}",severity="{severity}"}}"#);
        assert!(
            metric_value(&metrics, &series).unwrap_or(0.0) >= 1.0,
            "{series} missing:\n{metrics}"
        );
    }
    for (reason, count) in [
        ("critical_extension", 3.0),
        ("duplicate_member", 5.0),
        ("invalid_identity_value", 5.0),
    ] {
        let series =
            format!(r#"usher_security_events_total{{reason="{reason}",severity="medium"}}"#);
        assert_eq!(metric_value(&metrics, &series), Some(count), "{series}");
    }
    let logs = gateway.stderr() + &gateway.access_log();
    assert!(!logs.contains(&valid), "a token reached the logs");
    assert!(!logs.contains(SECRET), "the secret reached the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_carries_one_credential_and_only_the_verified_one_is_forwarded() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(&keys, &upstream, "", "")).await;
    let valid = keys.sign("hs", Algorithm::HS256, &claims());
    let forged = keys.sign(
        "hs",
        Algorithm::HS384,
        &with(
            claims(),
            json!({"tenant_id": "tenant-b", "roles": ["admin"]}),
        ),
    );
    let bearer_valid = format!("Bearer {valid}");
    let bearer_forged = format!("Bearer {forged}");
    let hits = upstream.hits();
    // Two of a kind, in either order: refused, whichever comes first.
    for (path, headers) in [
        (
            "/private/x",
            vec![
                ("authorization", bearer_valid.as_str()),
                ("authorization", bearer_forged.as_str()),
            ],
        ),
        (
            "/private/x",
            vec![
                ("authorization", bearer_forged.as_str()),
                ("authorization", bearer_valid.as_str()),
            ],
        ),
        (
            "/partner",
            vec![("x-api-key", "partner-key-1"), ("x-api-key", "other")],
        ),
    ] {
        let response = get_with(&gateway, path, &headers).await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.error_code(), "unauthenticated");
    }
    let two_cookies = format!("access_token={valid}; access_token={forged}");
    let response = get_with(&gateway, "/web", &[("cookie", &two_cookies)]).await;
    assert_eq!(response.status, 401);
    let (first, second) = (
        format!("access_token={valid}"),
        format!("a=1; access_token={forged}"),
    );
    let response = get_with(&gateway, "/web", &[("cookie", &first), ("cookie", &second)]).await;
    assert_eq!(response.status, 401);
    let response = gateway
        .get(&format!("/web?access_token={valid}&access_token={forged}"))
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(
        upstream.hits(),
        hits,
        "no ambiguous request reached the upstream"
    );

    // A cookie token reaches the upstream as the Authorization header alone: the forged
    // header beside it and the cookie itself are gone, other cookies stay.
    let cookie = format!("theme=dark; access_token={valid}");
    let response = get_with(
        &gateway,
        "/web",
        &[("cookie", &cookie), ("authorization", &bearer_forged)],
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let seen = response.json();
    assert_eq!(seen["headers"]["authorization"], json!([bearer_valid]));
    assert_eq!(seen["headers"]["cookie"], json!(["theme=dark"]));
    // A query token leaves the URL the upstream sees.
    let response = gateway
        .get(&format!("/web/f?lang=en&access_token={valid}"))
        .await;
    assert_eq!(response.status, 200);
    let seen = response.json();
    assert_eq!(seen["path"], "/web/f?lang=en");
    assert_eq!(seen["headers"]["authorization"], json!([bearer_valid]));
    // A forged token under a name frameworks decode to the same one does not ride along.
    let response = get_with(
        &gateway,
        "/download/f?access%5Ftoken=forged&x=1;access.token=forged",
        &[("authorization", &bearer_valid)],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/download/f?x=1");
    // Where a route does not say it forwards the credential, none leaves the edge: the
    // upstream learns the caller from the identity headers.
    let response = get_with(
        &gateway,
        "/private/x",
        &[
            ("authorization", &bearer_valid),
            ("x-api-key", "partner-key-1"),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    let seen = response.json();
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    assert_eq!(seen["headers"]["x-user-id"], json!(["user-1"]));
    // An API key goes alone too: no unverified token rides along.
    let response = get_with(
        &gateway,
        "/web",
        &[
            ("x-api-key", "partner-key-1"),
            ("cookie", &format!("access_token={forged}")),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    let seen = response.json();
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    assert_eq!(seen["headers"]["x-tenant-id"], json!(["acme"]));

    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="ambiguous_credentials",severity="medium"}"#
        ),
        Some(6.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_venue_scope_and_api_keys() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(&keys, &upstream, "", "")).await;
    let customer = keys.sign("hs", Algorithm::HS256, &claims());
    let admin = keys.sign(
        "hs",
        Algorithm::HS256,
        &with(claims(), json!({"roles": ["admin"], "venue_ids": []})),
    );
    let hits = upstream.hits();
    let response = bearer_get(&gateway, "/admin/x", &customer).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "forbidden");
    assert_eq!(
        bearer_get(&gateway, "/venues/v8", &customer).await.status,
        403,
        "venue outside the caller's scope"
    );
    assert_eq!(upstream.hits(), hits);
    assert_eq!(bearer_get(&gateway, "/admin/x", &admin).await.status, 200);
    assert_eq!(
        bearer_get(&gateway, "/venues/v7", &customer).await.status,
        200
    );
    assert_eq!(
        bearer_get(&gateway, "/venues/v8", &admin).await.status,
        200,
        "admins pass the venue scope"
    );

    // API keys: only where a route accepts them, mapped to the key's tenant.
    let response = get_with(&gateway, "/partner/sync", &[("x-api-key", "partner-key-1")]).await;
    assert_eq!(response.status, 200);
    let headers = &response.json()["headers"];
    assert_eq!(headers["x-tenant-id"][0], "acme");
    assert_eq!(headers["x-tenant-source"][0], "api-key");
    assert_eq!(headers["x-user-roles"][0], "partner");
    let hits = upstream.hits();
    assert_eq!(
        get_with(&gateway, "/partner/sync", &[("x-api-key", "partner-key-2")])
            .await
            .status,
        401
    );
    assert_eq!(
        get_with(&gateway, "/private/x", &[("x-api-key", "partner-key-1")])
            .await
            .status,
        401,
        "not on routes that do not accept keys"
    );
    assert_eq!(upstream.hits(), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_identity_headers_are_stripped_and_cannot_remove_injected_ones() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(
        &keys,
        &upstream,
        "",
        "identity: { strip_headers: [x-debug-user] }",
    ))
    .await;
    let token = keys.sign("hs", Algorithm::HS256, &claims());
    let auth = format!("Bearer {token}");
    let denied = [
        "x-tenant-id",
        "x-tenant-source",
        "x-user-id",
        "x-user-roles",
        "x-venue-ids",
        "x-internal-admin",
        "x-gateway-forwarded",
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x-original-method",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-ip",
        "x-debug-user",
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
        "true-client-ip",
    ];
    for name in denied {
        for spelling in [name.to_string(), name.to_uppercase(), title_case(name)] {
            let response = get_with(
                &gateway,
                "/private/x",
                &[
                    ("authorization", &auth),
                    (&spelling, "spoof-1"),
                    (&spelling, "spoof-2"),
                ],
            )
            .await;
            assert_eq!(response.status, 200);
            let body = String::from_utf8_lossy(&response.body).to_string();
            assert!(
                !body.contains("spoof-"),
                "{spelling} reached the upstream: {body}"
            );
        }
        // On public routes too.
        let response = get_with(&gateway, "/public/x", &[(name, "spoof-3")]).await;
        assert!(
            !String::from_utf8_lossy(&response.body).contains("spoof-3"),
            "{name} on a public route"
        );
    }
    // Connection-nominated headers are dropped before Usher injects its own.
    let response = get_with(
        &gateway,
        "/private/x",
        &[
            ("authorization", &auth),
            ("connection", "x-tenant-id, x-user-id"),
            ("x-tenant-id", "victim"),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    let headers = &response.json()["headers"];
    assert_eq!(headers["x-tenant-id"], json!(["tenant-a"]));
    assert_eq!(headers["x-user-id"], json!(["user-1"]));

    // Path tricks cannot reach a protected route through a public one.
    let hits = upstream.hits();
    for path in [
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "//private/x",
        "/public/..%2fprivate/x",
        "/public/..;/private/x",
        "/public/..%3b/private/x",
    ] {
        let status = gateway.get(path).await.status;
        assert!(status == 401 || status == 400, "{path}: {status}");
    }
    assert_eq!(upstream.hits(), hits);

    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="spoofed_identity_header",severity="medium"}"#
        )
        .unwrap()
            >= 51.0
    );
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[tokio::test(flavor = "multi_thread")]
async fn client_address_trusts_only_configured_proxies() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let untrusted = Gateway::start(&config(&keys, &upstream, "", "")).await;
    let response = get_with(&untrusted, "/public/x", &[("x-forwarded-for", "6.6.6.6")]).await;
    let headers = &response.json()["headers"];
    assert_eq!(headers["x-original-ip"][0], "127.0.0.1");
    assert_eq!(
        headers["x-forwarded-for"],
        json!(["127.0.0.1"]),
        "a client's X-Forwarded-For is not trusted"
    );
    assert_eq!(headers["x-forwarded-proto"][0], "http");

    let trusted = Gateway::start(&config(
        &keys,
        &upstream,
        "",
        "identity: { trusted_proxies: [127.0.0.1/32] }",
    ))
    .await;
    let response = get_with(
        &trusted,
        "/public/x",
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
    )
    .await;
    let headers = &response.json()["headers"];
    assert_eq!(headers["x-original-ip"][0], "198.51.100.7");
    assert_eq!(
        headers["x-forwarded-for"][0],
        "6.6.6.6, 198.51.100.7, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_without_downtime_and_key_files_are_reread_on_reload() {
    let keys = Keys::generate();
    let upstream = EchoServer::start("svc").await.unwrap();
    let second = keys.path("hs2.secret");
    std::fs::write(&second, "a-second-secret-that-is-long-enough-0123").unwrap();
    let rotation = format!(
        "      - {{ kid: hs2, algorithm: HS256, secret_file: \"{}\" }}",
        second.display()
    );
    let gateway = Gateway::start(&config(&keys, &upstream, &rotation, "")).await;
    let sign_second = |secret: &str| {
        encode(
            &Header {
                kid: Some("hs2".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims(),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let old = keys.sign("hs", Algorithm::HS256, &claims());
    let new = sign_second("a-second-secret-that-is-long-enough-0123");
    assert_eq!(bearer_get(&gateway, "/private/x", &old).await.status, 200);
    assert_eq!(bearer_get(&gateway, "/private/x", &new).await.status, 200);

    // Remove the old key: its tokens stop verifying, the new key's keep working.
    let without_old = config(&keys, &upstream, &rotation, "").replace(
        &format!(
            "      - {{ kid: hs, algorithm: HS256, secret_file: \"{}\" }}\n",
            keys.path("hs.secret").display()
        ),
        "",
    );
    gateway.rewrite_config(&without_old);
    assert!(
        eventually(Duration::from_secs(2), || async {
            bearer_get(&gateway, "/private/x", &old).await.status == 401
        })
        .await
    );
    assert_eq!(bearer_get(&gateway, "/private/x", &new).await.status, 200);

    // A key file's new content is read on reload (SIGHUP: the config file is unchanged).
    std::fs::write(&second, "a-rotated-secret-that-is-long-enough-456").unwrap();
    gateway.signal("HUP");
    let rotated = sign_second("a-rotated-secret-that-is-long-enough-456");
    assert!(
        eventually(Duration::from_secs(2), || async {
            bearer_get(&gateway, "/private/x", &rotated).await.status == 200
        })
        .await
    );
    assert_eq!(bearer_get(&gateway, "/private/x", &new).await.status, 401);

    // A short secret is refused at reload; the running keys stay.
    std::fs::write(&second, "too-short").unwrap();
    gateway.signal("HUP");
    assert!(
        eventually(Duration::from_secs(2), || async {
            gateway.stderr().contains("HMAC secrets need at least 32")
        })
        .await
    );
    assert_eq!(
        bearer_get(&gateway, "/private/x", &rotated).await.status,
        200
    );
}

#[test]
fn startup_refuses_missing_or_weak_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let run = |key: &str, env: &[(&str, &str)]| {
        let path = dir.path().join("routes.yaml");
        std::fs::write(
            &path,
            format!("listeners: {{ public: {{ address: \"127.0.0.1:{}\" }}, admin: {{ address: \"127.0.0.1:{}\" }} }}\nauthentication:\n  jwt:\n    issuer: i\n    audiences: [a]\n    keys: [{key}]\n", free_port(), free_port()),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("JWT_SECRET")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, err) = run("{ algorithm: HS256, secret_env: JWT_SECRET }", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("environment variable JWT_SECRET is not set"),
        "{err}"
    );
    let (code, err) = run(
        "{ algorithm: HS256, secret_env: JWT_SECRET }",
        &[("JWT_SECRET", "short")],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("at least 32"), "{err}");
    let (code, err) = run(
        "{ algorithm: HS256, secret_env: JWT_SECRET }",
        &[("JWT_SECRET", "development_secret_change_in_production")],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("publicly known"), "{err}");
    let (code, err) = run("{ algorithm: none, secret_env: JWT_SECRET }", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("never accepted"), "{err}");
    let _ = Path::new("");
}
