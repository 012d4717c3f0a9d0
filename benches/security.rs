//! The cost of verifying a JWT (HS256 and ES256) and of the whole security stage of a
//! request (hardening, identity-header stripping, authentication, authorization).
//! `cargo bench --bench security`. Needs the `openssl` command to make an EC key.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pingora::http::RequestHeader;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use usher::filters::{
    authenticate::authenticate, authorize::authorize, hardening, identity_headers,
};
use usher::prepare::prepare;

const SECRET: &str = "0123456789abcdef0123456789abcdef-bench-secret";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = (dir.path().join("es.key"), dir.path().join("es.pub"));
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(dir.path().join("hs.secret"), SECRET).unwrap();
    let yaml = format!(
        r#"
listeners: {{ public: {{ address: "127.0.0.1:1" }}, admin: {{ address: "127.0.0.1:2" }} }}
authentication:
  jwt:
    issuer: bench
    audiences: [api]
    keys:
      - {{ kid: hs, algorithm: HS256, secret_file: "{}" }}
      - {{ kid: es, algorithm: ES256, public_key_file: "{}" }}
upstreams: {{ svc: {{ targets: ["127.0.0.1:3"] }} }}
routes:
  - {{ name: venue, match: {{ path: /api/v1/venues/:venueId }}, upstream: svc, auth: {{ roles: [customer], venue_param: venueId }} }}
"#,
        dir.path().join("hs.secret").display(),
        public.display()
    );
    let prepared = prepare("bench.yaml", &yaml).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "sub": "user-1", "tenant_id": "t1", "roles": ["customer"], "venue_ids": ["7"],
        "type": "access", "iss": "bench", "aud": "api", "iat": now, "exp": now + 3600,
    });
    let sign = |kid: &str, algorithm, key: &EncodingKey| {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        encode(&header, &claims, key).unwrap()
    };
    let hs = sign(
        "hs",
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    let es = sign(
        "es",
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&std::fs::read(&key).unwrap()).unwrap(),
    );
    let verifier = prepared.security.jwt.as_ref().unwrap();

    let mut group = c.benchmark_group("jwt");
    // First verification of each token: a fresh token per iteration (signing not timed).
    let fresh = |kid: &'static str, algorithm: Algorithm, key: EncodingKey| {
        let claims = claims.clone();
        let mut n = 0u64;
        move || {
            n += 1;
            let mut header = Header::new(algorithm);
            header.kid = Some(kid.into());
            let mut claims = claims.clone();
            claims["jti"] = serde_json::json!(n.to_string());
            encode(&header, &claims, &key).unwrap()
        }
    };
    let es_key = EncodingKey::from_ec_pem(&std::fs::read(&key).unwrap()).unwrap();
    let mut hs_tokens = fresh(
        "hs",
        Algorithm::HS256,
        EncodingKey::from_secret(SECRET.as_bytes()),
    );
    let mut es_tokens = fresh("es", Algorithm::ES256, es_key);
    group.bench_function("verify-hs256/first", |b| {
        b.iter_batched(
            &mut hs_tokens,
            |t| verifier.verify(&t, SystemTime::now()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify-es256/first", |b| {
        b.iter_batched(
            &mut es_tokens,
            |t| verifier.verify(&t, SystemTime::now()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify-hs256/cached", |b| {
        b.iter(|| verifier.verify(black_box(&hs), SystemTime::now()).unwrap())
    });
    group.bench_function("verify-es256/cached", |b| {
        b.iter(|| verifier.verify(black_box(&es), SystemTime::now()).unwrap())
    });
    group.finish();

    let config = &prepared.config;
    let route = &config.routes[0];
    let mut request = RequestHeader::build("GET", b"/api/v1/venues/7", None).unwrap();
    for (name, value) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("x-tenant-id", "spoof"),
        ("authorization", &format!("Bearer {hs}")),
    ] {
        request.append_header(name.to_string(), value).unwrap();
    }
    let params = vec!["7".to_string()];
    c.bench_function("security-stage/hs256", |b| {
        b.iter(|| {
            let mut request = request.clone();
            hardening::check(&request, None, &config.limits).unwrap();
            identity_headers::strip(&mut request, &config.identity);
            let (identity, _) = authenticate(
                &request,
                &route.auth,
                None,
                &prepared.security,
                SystemTime::now(),
            )
            .unwrap();
            authorize(&identity, &route.auth, &params).unwrap();
            identity
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
