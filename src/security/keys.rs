//! Key material from the environment or files: never from routes.yaml itself, and never a
//! built-in default; and the verifying keys made of it, whether configured or fetched
//! from the issuer's key set.

use crate::config::{JwtKeySpec, JwtSpec, KeyMaterial};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// HMAC secrets shorter than this are refused (RFC 7518 3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

/// Secrets that are public knowledge: the old gateway's fallback among them.
const KNOWN_SECRETS: &[&str] = &[
    "development_secret_change_in_production",
    "secret",
    "changeme",
    "your-256-bit-secret",
];

/// One key, with the only algorithm it verifies and the validation rules.
pub struct VerifyingKey {
    pub(super) kid: Option<String>,
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
}

impl VerifyingKey {
    pub fn new(
        kid: Option<String>,
        algorithm: Algorithm,
        key: DecodingKey,
        spec: &JwtSpec,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = spec.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&spec.issuer]);
        validation.set_audience(&spec.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        VerifyingKey {
            kid,
            algorithm,
            key,
            validation,
        }
    }
}

pub fn decoding_key(spec: &JwtKeySpec) -> Result<DecodingKey, String> {
    match &spec.material {
        KeyMaterial::SecretEnv(name) => {
            let secret = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            hmac_key(secret.as_bytes(), &format!("environment variable {name}"))
        }
        KeyMaterial::SecretFile(path) => {
            let secret = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
            let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
            hmac_key(secret, &format!("\"{path}\""))
        }
        KeyMaterial::PublicKeyFile(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
            let parsed = match spec.algorithm {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => return Err("an HMAC algorithm takes a secret, not a public key".into()),
            };
            parsed.map_err(|e| {
                format!(
                    "\"{path}\" is not a {:?} public key in PEM: {e}",
                    spec.algorithm
                )
            })
        }
    }
}

fn hmac_key(secret: &[u8], origin: &str) -> Result<DecodingKey, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret in {origin} is {} bytes; HMAC secrets need at least {MIN_SECRET_BYTES}",
            secret.len()
        ));
    }
    if KNOWN_SECRETS.iter().any(|known| known.as_bytes() == secret) {
        return Err(format!(
            "the secret in {origin} is a publicly known default"
        ));
    }
    Ok(DecodingKey::from_secret(secret))
}
