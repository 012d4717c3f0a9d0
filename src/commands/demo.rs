//! `usher demo`: the shipped routes.yaml, served on 127.0.0.1 with one in-process echo
//! server standing in for each upstream service, so a newcomer sees the gateway work on a
//! fresh machine with nothing else installed.

use crate::echo::EchoServer;
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The shipped configuration, compiled into the binary.
pub const SHIPPED_ROUTES: &str = include_str!("../../routes.yaml");
/// The request-body schemas the shipped routes.yaml names, written beside the demo's copy.
const SHIPPED_SCHEMAS: &[(&str, &str)] = &[
    (
        "ticket-purchase.json",
        include_str!("../../schemas/ticket-purchase.json"),
    ),
    (
        "minting-batch.json",
        include_str!("../../schemas/minting-batch.json"),
    ),
    (
        "minting-reconcile.json",
        include_str!("../../schemas/minting-reconcile.json"),
    ),
];

/// Tickets in the demo's batch mint: over the shipped approval threshold (100).
const BATCH_TICKETS: usize = 150;

pub fn demo(port: u16, admin_port: u16) -> i32 {
    crate::telemetry::logging::init();
    match prepare(port, admin_port) {
        Ok(path) => {
            // The directory holds the demo's throwaway secrets: they go with the process,
            // whichever way it exits after the server ran.
            if let Some(directory) = path.parent() {
                crate::server::remove_on_exit(directory.to_path_buf());
            }
            let code = super::run::run(&path, None);
            crate::server::clean_up();
            code
        }
        Err(message) => {
            eprintln!("usher demo: {message}");
            1
        }
    }
}

/// Starts the echo upstreams and writes the demo configuration; returns its path.
fn prepare(port: u16, admin_port: u16) -> Result<PathBuf, String> {
    let mut document: Value = serde_yaml::from_str(SHIPPED_ROUTES).map_err(|e| e.to_string())?;
    let names: Vec<String> = document["upstreams"]
        .as_mapping()
        .ok_or("the shipped routes.yaml has no upstreams")?
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let addresses = start_echo_servers(names.clone(), [port, admin_port])?;
    document["listeners"]["public"] =
        serde_yaml::to_value(serde_json::json!({"address": format!("127.0.0.1:{port}")}))
            .map_err(|e| e.to_string())?;
    document["listeners"]["admin"]["address"] = Value::from(format!("127.0.0.1:{admin_port}"));
    // Each service's echo server, by the address the shipped file gives the service.
    let mut echo_of = std::collections::HashMap::new();
    for (name, address) in names.iter().zip(&addresses) {
        let targets = &mut document["upstreams"][name.as_str()]["targets"];
        for target in targets.as_sequence().into_iter().flatten() {
            if let Some(target) = target.as_str() {
                echo_of.insert(target.to_string(), address.to_string());
            }
        }
        *targets = Value::Sequence(vec![Value::from(address.to_string())]);
    }
    // The services Usher asks about its callers are echo servers too: they answer yes.
    for lookup in ["user_status", "venue_access"] {
        let url = &mut document["authentication"][lookup]["url"];
        if let Some(text) = url.as_str() {
            let served = echo_of
                .iter()
                .find_map(|(target, echo)| {
                    text.contains(&format!("//{target}/"))
                        .then(|| text.replacen(target.as_str(), echo, 1))
                })
                .ok_or(format!("authentication.{lookup}.url names no upstream"))?;
            *url = Value::from(served);
        }
    }
    // One replica: its own in-process counts are the whole truth, no Redis needed.
    if let Some(rate_limiting) = document["rate_limiting"].as_mapping_mut() {
        rate_limiting.remove("redis");
    }
    // The browser origin of a local front end, in place of the deployment's.
    if let Some(cors) = document["cors"].as_mapping_mut() {
        if cors.remove("allowed_origins_env").is_some() {
            cors.insert(
                Value::from("allowed_origins"),
                Value::Sequence(vec![Value::from(format!("http://localhost:{port}"))]),
            );
        }
    }
    let directory = std::env::temp_dir().join(format!("usher-demo-{}", std::process::id()));
    std::fs::create_dir_all(&directory).map_err(|e| e.to_string())?;
    // Without Redis, revoked token ids come from a file (re-read on SIGHUP).
    if document["authentication"]["revocation"].is_mapping() {
        let revoked = directory.join("revoked-tokens");
        std::fs::write(&revoked, "# revoked token ids (jti), one per line\n")
            .map_err(|e| e.to_string())?;
        document["authentication"]["revocation"]["file"] =
            Value::from(revoked.display().to_string());
    }
    std::fs::create_dir_all(directory.join("schemas")).map_err(|e| e.to_string())?;
    for (name, text) in SHIPPED_SCHEMAS {
        std::fs::write(directory.join("schemas").join(name), text).map_err(|e| e.to_string())?;
    }
    // A batch mint large enough to need a second admin's approval.
    let tickets: Vec<String> = (1..=BATCH_TICKETS).map(|n| format!("ticket-{n}")).collect();
    let batch = serde_json::json!({ "venueId": "7", "ticketIds": tickets });
    std::fs::write(directory.join("batch.json"), batch.to_string()).map_err(|e| e.to_string())?;
    let credentials = demo_credentials(&directory, &mut document)?;
    // Usher signs what it forwards to the minting service with a key made now.
    let signing_key = directory.join("signing-key.pem");
    std::fs::write(&signing_key, ed25519_pem(rand::random())).map_err(|e| e.to_string())?;
    if let Some(keys) = document["signing"]["keys"].as_sequence_mut() {
        for key in keys {
            key["private_key_file"] = Value::from(signing_key.display().to_string());
        }
    }
    // The webhook routes verify a Stripe signature made with the demo's own secret.
    let webhook_secret = directory.join("webhook-secret");
    std::fs::write(&webhook_secret, &credentials.webhook_secret).map_err(|e| e.to_string())?;
    for route in document["routes"].as_sequence_mut().into_iter().flatten() {
        if route["webhook"].is_mapping() {
            route["webhook"]["secrets"] =
                serde_yaml::from_str(&format!("[{{ file: \"{}\" }}]", webhook_secret.display()))
                    .map_err(|e| e.to_string())?;
        }
    }
    let path = directory.join("routes.yaml");
    let text = serde_yaml::to_string(&document).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    print_banner(port, admin_port, &path, &credentials);
    Ok(path)
}

/// Runs one echo server per upstream on a small runtime of its own, for the process's life.
/// The echo servers take ports the kernel picks, never `avoid` (the demo's own listeners,
/// which bind later).
fn start_echo_servers(names: Vec<String>, avoid: [u16; 2]) -> Result<Vec<SocketAddr>, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("usher-demo-upstreams".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the demo upstreams' runtime");
            runtime.block_on(async move {
                let mut servers = Vec::new();
                // Ports refused are held until every server has its own, so none comes back.
                let mut refused = Vec::new();
                for name in &names {
                    let listener = loop {
                        match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                            Ok(listener)
                                if listener
                                    .local_addr()
                                    .is_ok_and(|a| avoid.contains(&a.port())) =>
                            {
                                refused.push(listener)
                            }
                            Ok(listener) => break listener,
                            Err(e) => {
                                let _ = sender.send(Err(e.to_string()));
                                return;
                            }
                        }
                    };
                    servers.push(EchoServer::serve(listener, name));
                }
                drop(refused);
                let _ = sender.send(Ok(servers.iter().map(|s| s.addr).collect()));
                std::future::pending::<()>().await;
            });
        })
        .map_err(|e| e.to_string())?;
    receiver.recv().map_err(|e| e.to_string())?
}

/// A token and an API key to try, and where the demo's secrets live.
struct Credentials {
    token: String,
    admin_token: String,
    /// A second admin of the same tenant, to approve what the first submits.
    approver_token: String,
    api_key: String,
    /// The payment webhooks' signing secret, Stripe-style.
    webhook_secret: String,
}

/// The demo's own secrets: a random HMAC secret and API key, made now and written to the
/// demo's directory. There is no built-in secret anywhere in Usher.
fn demo_credentials(
    directory: &std::path::Path,
    document: &mut Value,
) -> Result<Credentials, String> {
    use sha2::Digest;
    let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let secret = hex(rand::random());
    let api_key = hex(rand::random());
    let secret_file = directory.join("jwt-secret");
    let keys_file = directory.join("api-keys.yaml");
    std::fs::write(&secret_file, &secret).map_err(|e| e.to_string())?;
    let key_hash = hex(sha2::Sha256::digest(api_key.as_bytes()).into());
    std::fs::write(
        &keys_file,
        format!("keys:\n  - {{ name: demo-partner, sha256: \"{key_hash}\", tenant: partner-demo, roles: [partner], tier: standard }}\n"),
    )
    .map_err(|e| e.to_string())?;
    let jwt = &mut document["authentication"]["jwt"];
    jwt["keys"] = serde_yaml::from_str(&format!(
        "[{{ kid: demo, algorithm: HS256, secret_file: \"{}\" }}]",
        secret_file.display()
    ))
    .map_err(|e| e.to_string())?;
    let issuer = jwt["issuer"].as_str().unwrap_or("").to_string();
    let audience = jwt["audiences"][0].as_str().unwrap_or("").to_string();
    document["authentication"]["api_keys"]["file"] = Value::from(keys_file.display().to_string());
    let sign = |sub: &str, roles: &[&str], jti: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "sub": sub, "tenant_id": "tenant-demo", "roles": roles, "venue_ids": ["7"],
            "type": "access", "iss": issuer, "aud": audience, "iat": now, "exp": now + 3600,
            "jti": jti,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("demo".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| e.to_string())
    };
    Ok(Credentials {
        // Two callers, so they do not share rate-limit buckets.
        token: sign("demo-user", &["customer", "venue_manager"], "demo-token")?,
        admin_token: sign("demo-admin", &["admin"], "demo-admin-token")?,
        approver_token: sign("demo-approver", &["admin"], "demo-approver-token")?,
        api_key,
        webhook_secret: format!("whsec_{}", hex(rand::random())),
    })
}

/// An Ed25519 private key from its 32-byte seed, as PKCS#8 PEM (the fixed DER prefix of
/// RFC 8410 section 7, then the seed).
fn ed25519_pem(seed: [u8; 32]) -> String {
    use base64::Engine;
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{encoded}\n-----END PRIVATE KEY-----\n")
}

fn print_banner(port: u16, admin_port: u16, path: &std::path::Path, credentials: &Credentials) {
    let base = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    println!(
        r#"
Usher demo: the shipped routes.yaml, every upstream replaced by an echo server.
Config in use (edit it and save: Usher reloads it live): {path}

Try:
  # a public route, forwarded to auth-service as /auth/login (the echo shows what arrived)
  curl -s {base}/api/v1/auth/login -d '{{"email":"a@b.c"}}'
  # a protected route without credentials: 401 in Usher's error shape
  curl -si {base}/api/v1/venues/7
  # with a token (valid 1 h, signed with this demo's random secret): the echo shows the
  # tenant, user and roles Usher injected from the verified token, and no spoofed tenant
  TOKEN={token}
  curl -s {base}/api/v1/venues/7 -H "authorization: Bearer $TOKEN" -H 'x-tenant-id: victim'
  # venue scope: the token is scoped to venue 7, so changing venue 8 is 403
  curl -si -X PATCH {base}/api/v1/venues/8 -H "authorization: Bearer $TOKEN"
  # admin-only minting: 403 for this caller, allowed with the admin token (its venue 7)
  curl -si {base}/api/v1/minting/admin/stats/7 -H "authorization: Bearer $TOKEN"
  curl -s {base}/api/v1/minting/admin/stats/7 -H "authorization: Bearer {admin_token}"
  # a purchase needs an Idempotency-Key and a body its schema (schemas/ticket-purchase.json)
  # accepts: a body that breaks it is 422, naming where, before anything reaches the
  # service; retried with the same key, a good one is answered from the first answer
  # (idempotent-replayed: true) and reaches the service once
  ORDER='{{"eventId":"evt-1","tickets":[{{"ticketTypeId":"ga","quantity":2}}]}}'
  curl -si {base}/api/v1/tickets/purchase -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$ORDER"
  curl -si {base}/api/v1/tickets/purchase -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'idempotency-key: "order-1"' -d '{{"eventId":"evt-1","tickets":[]}}'
  curl -si {base}/api/v1/tickets/purchase -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'idempotency-key: "order-1"' -d "$ORDER"
  curl -si {base}/api/v1/tickets/purchase -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'idempotency-key: "order-1"' -d "$ORDER"
  # a batch mint of more than 100 tickets needs a second admin: the first answer is 403
  # approval_required with an approval id; the other admin reads and approves it; the
  # identical request (same body, same Idempotency-Key) then goes through once, and the
  # minting service sees who approved it (x-approved-by)
  ADMIN={admin_token}
  APPROVER={approver_token}
  BATCH='{base}/api/v1/minting/admin/batch-mint -H content-type:application/json -H idempotency-key:"batch-1" -d @{batch}'
  ID=$(curl -s $BATCH -H "authorization: Bearer $ADMIN" | sed -n 's/.*"approval_id":"\([0-9a-f]*\)".*/\1/p'); echo $ID
  curl -s {base}/api/v1/approvals/$ID -H "authorization: Bearer $APPROVER"
  curl -si -X POST {base}/api/v1/approvals/$ID/approve -H "authorization: Bearer $ADMIN"
  curl -s -X POST {base}/api/v1/approvals/$ID/approve -H "authorization: Bearer $APPROVER"
  curl -s $BATCH -H "authorization: Bearer $ADMIN"
  # a payment provider's webhook: Usher checks its Stripe signature (HMAC of the timestamp
  # and the exact body) before payment-service sees it; signed now it passes, the same
  # delivery again is 409, a changed body or no signature is 401
  WHSEC={webhook_secret}
  EVENT='{{"id":"evt_1","type":"payment_intent.succeeded"}}'
  T=$(date +%s); SIG=$(printf '%s.%s' "$T" "$EVENT" | openssl dgst -sha256 -hmac "$WHSEC" | sed 's/.* //')
  curl -s {base}/api/v1/payments/webhooks -H "stripe-signature: t=$T,v1=$SIG" -d "$EVENT"
  curl -si {base}/api/v1/payments/webhooks -H "stripe-signature: t=$T,v1=$SIG" -d "$EVENT"
  curl -si {base}/api/v1/payments/webhooks -H "stripe-signature: t=$T,v1=$SIG" -d '{{"id":"evt_1","type":"refund"}}'
  # a partner API key on the integrations route
  curl -s {base}/api/v1/integrations/sync -H 'x-api-key: {api_key}'
  # a spoofed tenant header on a public route is stripped before forwarding
  curl -s {base}/api/v1/auth/register -H 'x-tenant-id: victim' -X POST
  # path tricks are normalized or refused
  curl -si '{base}/api/v1/auth/login/..%2f..%2fvenues'
  # no such route
  curl -si {base}/nope
  # revoke the token by its jti (demo-token) and reload (in the background, hence the
  # pause): the same request is now 401
  echo demo-token >> {revoked} && kill -HUP {pid} && sleep 1
  curl -si {base}/api/v1/venues/7 -H "authorization: Bearer $TOKEN"
  # probes, health report and metrics on the admin port
  curl -s {admin}/health/ready
  curl -s {admin}/health
  curl -s {admin}/metrics | grep usher_http_requests_total
  # the public keys of Usher's signature on what it forwards to minting-service (the
  # echo above shows signature-input and signature on every minting request)
  curl -s {admin}/signing-keys
"#,
        path = path.display(),
        revoked = path.with_file_name("revoked-tokens").display(),
        pid = std::process::id(),
        token = credentials.token,
        admin_token = credentials.admin_token,
        approver_token = credentials.approver_token,
        webhook_secret = credentials.webhook_secret,
        batch = path.with_file_name("batch.json").display(),
        api_key = credentials.api_key,
    );
}
