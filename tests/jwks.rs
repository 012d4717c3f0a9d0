//! Keys from the issuer's JWKS through the real gateway: startup fetch, rotation picked up
//! on an unknown kid, rate-limited refreshes, stale keys kept through an outage and through
//! reloads (which keep the refresh schedule too), JWKs
//! without `alg` skipped, 503 when no key can be obtained at all, and key sets and lookups
//! over HTTPS, verified against a private CA.

mod common;

use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves a JWK set that the test can change, and counts fetches.
struct KeySetServer {
    addr: std::net::SocketAddr,
    document: Arc<Mutex<Value>>,
    stub: StubServer,
}

impl KeySetServer {
    async fn start(document: Value) -> KeySetServer {
        let document = Arc::new(Mutex::new(document));
        let served = Arc::clone(&document);
        let stub = StubServer::start(move |_path| (200, served.lock().unwrap().to_string())).await;
        KeySetServer {
            addr: stub.addr,
            document,
            stub,
        }
    }

    fn fetches(&self) -> usize {
        self.stub.asked().len()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn openssl(args: &[&str], input: &std::path::Path) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .arg(input)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    output.stdout
}

/// Generates an RSA and an Ed25519 key; returns (private PEMs, JWKs).
fn keys(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, Value, Value) {
    let (rs, ed) = (dir.join("rs.key"), dir.join("ed.key"));
    for (path, args) in [
        (
            &rs,
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (&ed, vec!["-algorithm", "ed25519"]),
    ] {
        let ok = Command::new("openssl")
            .arg("genpkey")
            .args(&args)
            .arg("-out")
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let modulus = String::from_utf8(openssl(&["rsa", "-modulus", "-noout", "-in"], &rs)).unwrap();
    let hex = modulus.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let ed_der = openssl(&["pkey", "-pubout", "-outform", "DER", "-in"], &ed);
    let rs_jwk =
        json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(&n), "e": "AQAB"});
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k2", "alg": "EdDSA", "x": b64(&ed_der[ed_der.len() - 32..])});
    (
        std::fs::read(&rs).unwrap(),
        std::fs::read(&ed).unwrap(),
        rs_jwk,
        ed_jwk,
    )
}

fn token(kid: &str, algorithm: Algorithm, key: &EncodingKey) -> String {
    let now = unix_now();
    let claims = json!({"sub": "u1", "tenant_id": "t1", "type": "access", "iss": "issuer", "aud": "api", "iat": now, "exp": now + 600});
    let header = Header {
        kid: Some(kid.into()),
        ..Header::new(algorithm)
    };
    sign_jwt(header, key, &claims)
}

fn config(jwks: std::net::SocketAddr, upstream: &EchoServer) -> String {
    format!(
        r#"
authentication:
  jwt:
    issuer: issuer
    audiences: [api]
    jwks: {{ url: "http://{jwks}/.well-known/jwks.json", refresh_interval: 500ms, min_refresh_interval: 300ms, timeout: 1s }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: private, match: {{ path: /private }}, upstream: svc }}
"#,
        upstream.addr
    )
}

async fn status(gateway: &Gateway, token: &str) -> u16 {
    bearer_get(gateway, "/private/x", token).await.status
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_come_from_the_issuer_and_follow_rotation_and_outages() {
    let dir = tempfile::tempdir().unwrap();
    let (rs_pem, ed_pem, rs_jwk, ed_jwk) = keys(dir.path());
    let mut no_alg = ed_jwk.clone();
    no_alg["kid"] = json!("k3");
    no_alg.as_object_mut().unwrap().remove("alg");
    let server = KeySetServer::start(json!({"keys": [rs_jwk.clone(), no_alg]})).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(server.addr, &upstream)).await;
    assert!(server.fetches() >= 1, "fetched before going live");

    let rs = EncodingKey::from_rsa_pem(&rs_pem).unwrap();
    let ed = EncodingKey::from_ed_pem(&ed_pem).unwrap();
    assert_eq!(
        status(&gateway, &token("k1", Algorithm::RS256, &rs)).await,
        200
    );
    assert_eq!(
        status(&gateway, &token("k3", Algorithm::EdDSA, &ed)).await,
        401,
        "a JWK without alg is never used"
    );
    assert_eq!(
        status(&gateway, &token("k1", Algorithm::EdDSA, &ed)).await,
        401,
        "the JWK's alg, not the token's"
    );

    // Rotation: the issuer publishes k2; the first k2 token triggers a refresh.
    server.document.lock().unwrap()["keys"] = json!([rs_jwk, ed_jwk]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        status(&gateway, &token("k2", Algorithm::EdDSA, &ed)).await,
        200
    );

    // The issuer withdraws k1 (say, it leaked): once the set is refreshed, k1 tokens stop
    // verifying, even those verified and cached before.
    let k1_token = token("k1", Algorithm::RS256, &rs);
    assert_eq!(status(&gateway, &k1_token).await, 200);
    server.document.lock().unwrap()["keys"] = json!([ed_jwk.clone()]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        status(&gateway, &k1_token).await,
        401,
        "a withdrawn key's cached token still passed"
    );

    // Forged kids cannot make Usher hammer the issuer: refreshes stay rate-limited.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let before = server.fetches();
    for n in 0..20 {
        assert_eq!(
            status(
                &gateway,
                &token(&format!("forged-{n}"), Algorithm::EdDSA, &ed)
            )
            .await,
            401
        );
    }
    assert!(
        server.fetches() - before <= 2,
        "{} refreshes for 20 forged kids",
        server.fetches() - before
    );

    // Outage: the issuer is gone; the keys Usher has keep working, through a reload too.
    drop(server);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let k2_token = token("k2", Algorithm::EdDSA, &ed);
    assert_eq!(status(&gateway, &k2_token).await, 200);
    let reloads = r#"usher_config_reloads_total{result="success"}"#;
    let before = metric_value(&gateway.metrics().await, reloads).unwrap_or(0.0);
    gateway.signal("HUP");
    let reloaded = eventually(Duration::from_secs(5), || async {
        metric_value(&gateway.metrics().await, reloads).unwrap_or(0.0) > before
    })
    .await;
    assert!(reloaded, "{}", gateway.stderr());
    assert_eq!(
        status(&gateway, &k2_token).await,
        200,
        "a reload during the issuer's outage dropped the keys"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_at_all_is_unavailable_not_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ed_pem, _, _) = keys(dir.path());
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(closed, &upstream)).await;
    let hits = upstream.hits();
    let response = request(
        gateway.public,
        "GET",
        "/private/x",
        &[(
            "authorization",
            &format!(
                "Bearer {}",
                token(
                    "k2",
                    Algorithm::EdDSA,
                    &EncodingKey::from_ed_pem(&ed_pem).unwrap()
                )
            ),
        )],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "auth_unavailable");
    assert_eq!(upstream.hits(), hits);
    assert_eq!(
        status(&gateway, "garbage").await,
        401,
        "a malformed token is still 401"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_keep_the_key_set_and_its_refresh_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ed_pem, _, ed_jwk) = keys(dir.path());
    let server = KeySetServer::start(json!({"keys": [ed_jwk]})).await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&config(server.addr, &upstream)).await;
    let ed_token = token(
        "k2",
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(&ed_pem).unwrap(),
    );
    assert_eq!(status(&gateway, &ed_token).await, 200);

    // Ten reloads in 2 s, more often than the 500 ms refresh interval: none fetches the set
    // on its own, and none postpones the scheduled refreshes (about four).
    let fetched = server.fetches();
    for _ in 0..10 {
        gateway.signal("HUP");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fetches = server.fetches() - fetched;
    assert!(
        (2..=6).contains(&fetches),
        "{fetches} fetches in 2 s, with a 500 ms refresh interval and 10 reloads"
    );
    assert_eq!(status(&gateway, &ed_token).await, 200);
}

/// A private CA and a certificate for 127.0.0.1 it signed: (the CA's PEM file, the
/// server's identity).
fn certificates(dir: &std::path::Path) -> (std::path::PathBuf, native_tls::Identity) {
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=usher-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    let identity = native_tls::Identity::from_pkcs8(
        &std::fs::read(dir.join("server.pem")).unwrap(),
        &std::fs::read(dir.join("server.key")).unwrap(),
    )
    .unwrap();
    (dir.join("ca.pem"), identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_key_sets_and_lookups_are_verified_against_the_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (rs_pem, _, rs_jwk, _) = keys(dir.path());
    let (ca, identity) = certificates(dir.path());
    let keys = json!({"keys": [rs_jwk]}).to_string();
    let issuer = StubServer::start_tls(
        move |path| match path {
            "/.well-known/jwks.json" => (200, keys.clone()),
            "/internal/users/u1/status" => (200, String::new()),
            _ => (404, String::new()),
        },
        identity,
    )
    .await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let body = format!(
        r#"
authentication:
  jwt:
    issuer: issuer
    audiences: [api]
    jwks: {{ url: "https://{0}/.well-known/jwks.json", timeout: 1s }}
  user_status: {{ url: "https://{0}/internal/users/{{sub}}/status", timeout: 1s }}
upstreams:
  svc: {{ targets: ["{1}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: private, match: {{ path: /private }}, upstream: svc, auth: {{ user_status: true }} }}
"#,
        issuer.addr, upstream.addr
    );
    let token = token(
        "k1",
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&rs_pem).unwrap(),
    );

    // Trusting the private CA (as a pod would with the CA mounted and SSL_CERT_FILE set):
    // the key set and the user status both come over TLS.
    let trusting = Gateway::start_with_env(&body, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
    assert_eq!(
        status(&trusting, &token).await,
        200,
        "{}",
        trusting.stderr()
    );
    assert_eq!(
        issuer.asked(),
        ["/.well-known/jwks.json", "/internal/users/u1/status"]
    );

    // The same server is not trusted without its CA: no key can be obtained (503), and no
    // request carried on past the handshake.
    let asked = issuer.asked().len();
    let strict = Gateway::start_with_env(&body, &[("SSL_CERT_FILE", "/nonexistent")]).await;
    let response = bearer_get(&strict, "/private/x", &token).await;
    assert_eq!(response.status, 503);
    assert_eq!(issuer.asked().len(), asked);
    assert!(
        strict.stderr().contains("tls handshake"),
        "{}",
        strict.stderr()
    );
}
