//! The cost of the signatures Usher checks and makes, per request, on a 1 KiB body: each
//! webhook scheme's verification, an RFC 9421 credential's (HMAC-SHA256 and Ed25519), the
//! body's Content-Digest check, and Usher's own Ed25519 signature on what it forwards.
//! `cargo bench --bench signatures`. Needs the `openssl` command to make Ed25519 keys.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use pingora::http::RequestHeader;
use sha2::Sha256;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use usher::signatures::message::{
    content_digest, signature_base, signature_params, Component, Params,
};
use usher::signatures::verify::digest_matches;
use usher::signatures::webhook::{verify, Scheme};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HMAC_SECRET: &str = "a partner's shared secret, 40 bytes long!";

fn mac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let body: Vec<u8> =
        format!("{{\"id\":\"evt_1\",\"pad\":\"{}\"}}", "x".repeat(1000)).into_bytes();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = now.to_string();
    let tolerance = Duration::from_secs(300);

    // Webhooks, each signed as its provider signs.
    let stripe_key = Scheme::Stripe.key(SECRET.as_bytes()).unwrap();
    let mut stripe = http::HeaderMap::new();
    let v1 = mac_hex(&stripe_key, &[t.as_bytes(), b".", &body]);
    stripe.insert(
        "stripe-signature",
        format!("t={t},v1={v1}").parse().unwrap(),
    );
    let standard_key = Scheme::Standard.key(SECRET.as_bytes()).unwrap();
    let mut standard = http::HeaderMap::new();
    let mut mac = Hmac::<Sha256>::new_from_slice(&standard_key).unwrap();
    mac.update(format!("msg_1.{t}.").as_bytes());
    mac.update(&body);
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    standard.insert("webhook-id", "msg_1".parse().unwrap());
    standard.insert("webhook-timestamp", t.parse().unwrap());
    standard.insert(
        "webhook-signature",
        format!("v1,{signature}").parse().unwrap(),
    );
    let github_key = Scheme::GitHub.key(SECRET.as_bytes()).unwrap();
    let mut github = http::HeaderMap::new();
    let hex = mac_hex(&github_key, &[&body]);
    github.insert(
        "x-hub-signature-256",
        format!("sha256={hex}").parse().unwrap(),
    );
    github.insert("x-github-delivery", "d-1".parse().unwrap());
    let mut group = c.benchmark_group("webhook");
    for (name, scheme, headers, key) in [
        ("stripe", Scheme::Stripe, &stripe, &stripe_key),
        ("standard", Scheme::Standard, &standard, &standard_key),
        ("github", Scheme::GitHub, &github, &github_key),
    ] {
        let keys = [key.clone()];
        assert!(verify(scheme, headers, &body, &keys, tolerance, now).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| {
                verify(
                    scheme,
                    black_box(headers),
                    black_box(&body),
                    &keys,
                    tolerance,
                    now,
                )
            })
        });
    }
    group.finish();

    // RFC 9421 credentials, through a configuration as Usher loads it.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("svc.pem");
    let public = dir.path().join("svc.pub");
    assert!(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success());
    std::fs::write(dir.path().join("partner.secret"), HMAC_SECRET).unwrap();
    let yaml = format!(
        r#"
listeners: {{ public: {{ address: "127.0.0.1:1" }}, admin: {{ address: "127.0.0.1:2" }} }}
authentication:
  signatures:
    keys:
      - {{ id: partner, hmac_secret_file: "{}", tenant: t }}
      - {{ id: svc, ed25519_public_key_file: "{}", tenant: t }}
signing:
  keys: [{{ id: usher-1, private_key_file: "{}" }}]
upstreams: {{ svc: {{ targets: ["127.0.0.1:3"], sign_requests: true }} }}
routes:
  - {{ name: signed, match: {{ path: /signed }}, upstream: svc, max_body: 64KiB, auth: {{ signatures: true }} }}
"#,
        dir.path().join("partner.secret").display(),
        public.display(),
        private.display()
    );
    let prepared = usher::prepare::prepare("bench.yaml", &yaml).unwrap();
    let keys = prepared.security.signatures.as_ref().unwrap();
    let signed_request = |keyid: &str, sign: &dyn Fn(&[u8]) -> Vec<u8>| {
        let mut request = RequestHeader::build("POST", b"/signed/batch?day=1", None).unwrap();
        request
            .insert_header("content-length", body.len().to_string())
            .unwrap();
        request
            .insert_header("content-digest", content_digest(&body))
            .unwrap();
        let components: Vec<Component> = vec![
            ("@method", "POST".into()),
            ("@path", "/signed/batch".into()),
            ("@query", "?day=1".into()),
            ("content-digest", content_digest(&body)),
        ];
        let params = signature_params(
            &components,
            &Params {
                created: now,
                keyid,
                alg: None,
                nonce: None,
            },
        );
        let signature = sign(signature_base(&components, &params).as_bytes());
        request
            .insert_header("signature-input", format!("sig1={params}"))
            .unwrap();
        request
            .insert_header(
                "signature",
                format!("sig1=:{}:", STANDARD.encode(signature)),
            )
            .unwrap();
        request
    };
    let hmac_request = signed_request("partner", &|base| {
        let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
        mac.update(base);
        mac.finalize().into_bytes().to_vec()
    });
    let pem = std::fs::read_to_string(&private).unwrap();
    let ed_key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let ed_request = signed_request("svc", &|base| ed_key.sign(base).to_bytes().to_vec());
    let mut group = c.benchmark_group("rfc9421");
    for (name, request) in [("hmac-sha256", &hmac_request), ("ed25519", &ed_request)] {
        assert!(keys.verify(request, &[], now).is_ok(), "{name}");
        group.bench_function(format!("verify-{name}"), |b| {
            b.iter(|| keys.verify(black_box(request), &[], now))
        });
    }
    let digest = content_digest(&body);
    group.bench_function("content-digest-check", |b| {
        b.iter(|| digest_matches(black_box(&digest), black_box(&body)))
    });
    let signer = prepared.signer.as_ref().unwrap();
    group.bench_function("usher-signs-ed25519", |b| {
        b.iter(|| {
            let mut request = RequestHeader::build("POST", b"/admin/batch-mint", None).unwrap();
            request.insert_header("x-tenant-id", "t1").unwrap();
            request.insert_header("x-user-id", "alice").unwrap();
            signer.sign(&mut request, black_box(&body)).unwrap();
            request
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
