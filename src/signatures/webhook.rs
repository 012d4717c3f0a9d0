//! Webhook signatures, over the exact body bytes, in the three schemes providers use:
//!
//! | scheme | headers | signed bytes | MAC |
//! |---|---|---|---|
//! | `stripe` | `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` | `<t>.<body>` | HMAC-SHA256, the secret as written |
//! | `standard` (Standard Webhooks) | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …` | `<id>.<timestamp>.<body>` | HMAC-SHA256, the base64 key after `whsec_` |
//! | `github` | `X-Hub-Signature-256: sha256=<hex>` | `<body>` | HMAC-SHA256 |
//!
//! Every configured secret is tried (so a provider's secret rotates without downtime), each
//! comparison in constant time (`hmac`'s `verify_slice`). A timestamp must be within the
//! tolerance of now, either way. A delivery is named by what its provider signed (the
//! Standard Webhooks id; a digest of Stripe's timestamp and body; a digest of GitHub's
//! body, since GitHub signs neither an id nor a time), never by unsigned header text.

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Stripe,
    Standard,
    GitHub,
}

impl Scheme {
    pub fn parse(text: &str) -> Option<Scheme> {
        Some(match text {
            "stripe" => Scheme::Stripe,
            "standard" => Scheme::Standard,
            "github" => Scheme::GitHub,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Stripe => "stripe",
            Scheme::Standard => "standard",
            Scheme::GitHub => "github",
        }
    }

    /// The MAC key a configured secret stands for: Standard Webhooks' secrets are
    /// `whsec_` and base64; the others are used as written.
    pub fn key(self, secret: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Scheme::Standard => {
                let text = std::str::from_utf8(secret).map_err(|_| "is not text".to_string())?;
                let encoded = text.strip_prefix("whsec_").unwrap_or(text);
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| "is not a Standard Webhooks secret (whsec_ and base64)".into())
            }
            Scheme::Stripe | Scheme::GitHub => Ok(secret.to_vec()),
        }
    }
}

/// Why a delivery is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A header the scheme needs is absent or unreadable.
    Missing,
    /// The timestamp is further from now than the tolerance.
    OutOfTolerance,
    /// No signature matches any secret.
    Mismatch,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::OutOfTolerance => "stale",
            Refusal::Mismatch => "mismatch",
        }
    }
}

/// A delivery whose signature verified: what tells it apart from every other delivery
/// (for [`super::deliveries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub delivery: String,
}

/// Verifies `body` as delivered with `headers` under `scheme`, against every key in `keys`,
/// at `now` (seconds since the epoch).
pub fn verify(
    scheme: Scheme,
    headers: &HeaderMap,
    body: &[u8],
    keys: &[Vec<u8>],
    tolerance: Duration,
    now: u64,
) -> Result<Verified, Refusal> {
    let header = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    let within = |timestamp: &str| -> Result<(), Refusal> {
        let at: u64 = timestamp.parse().map_err(|_| Refusal::Missing)?;
        if now.abs_diff(at) > tolerance.as_secs() {
            return Err(Refusal::OutOfTolerance);
        }
        Ok(())
    };
    match scheme {
        Scheme::Stripe => {
            let field = header("stripe-signature").ok_or(Refusal::Missing)?;
            let mut timestamp = None;
            let mut signatures = Vec::new();
            for item in field.split(',') {
                match item.trim().split_once('=') {
                    Some(("t", t)) => timestamp = Some(t),
                    Some(("v1", hex)) => signatures.push(hex),
                    _ => {}
                }
            }
            let timestamp = timestamp.ok_or(Refusal::Missing)?;
            if signatures.is_empty() {
                return Err(Refusal::Missing);
            }
            within(timestamp)?;
            let decoded: Vec<Vec<u8>> = signatures.iter().filter_map(|s| hex_decode(s)).collect();
            let signed = [timestamp.as_bytes(), b".", body];
            matches_any(keys, &signed, &decoded)?;
            // What was signed names the delivery, not the header's text (which a replay
            // could pad with another `v1` or re-case).
            Ok(Verified {
                delivery: crate::digest::sha256_hex(&signed, 16),
            })
        }
        Scheme::Standard => {
            let id = header("webhook-id").ok_or(Refusal::Missing)?;
            let timestamp = header("webhook-timestamp").ok_or(Refusal::Missing)?;
            let field = header("webhook-signature").ok_or(Refusal::Missing)?;
            within(timestamp)?;
            let decoded: Vec<Vec<u8>> = field
                .split(' ')
                .filter_map(|entry| entry.strip_prefix("v1,"))
                .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .collect();
            if decoded.is_empty() {
                return Err(Refusal::Missing);
            }
            let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
            matches_any(keys, &signed, &decoded)?;
            Ok(Verified {
                delivery: id.to_string(),
            })
        }
        Scheme::GitHub => {
            let field = header("x-hub-signature-256").ok_or(Refusal::Missing)?;
            let hex = field.strip_prefix("sha256=").ok_or(Refusal::Missing)?;
            let decoded = hex_decode(hex).ok_or(Refusal::Mismatch)?;
            matches_any(keys, &[body], &[decoded])?;
            // GitHub signs neither its delivery id nor a time: the body names the delivery
            // (a redelivery carries the same body), within the replay window.
            Ok(Verified {
                delivery: crate::digest::sha256_hex(&[body], 16),
            })
        }
    }
}

/// Whether the HMAC-SHA256 of `parts` under one of `keys` is one of `signatures`, each
/// comparison in constant time.
fn matches_any(keys: &[Vec<u8>], parts: &[&[u8]], signatures: &[Vec<u8>]) -> Result<(), Refusal> {
    for key in keys {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            continue;
        };
        for part in parts {
            mac.update(part);
        }
        for signature in signatures {
            if mac.clone().verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(Refusal::Mismatch)
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    // Standard Webhooks' own example (its specification's "Verifying" section): this
    // secret, id, timestamp and payload give this signature.
    #[test]
    fn the_standard_webhooks_specification_example_verifies() {
        let key = Scheme::Standard
            .key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let payload = br#"{"test": 2432232314}"#;
        let delivered = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        let verified = verify(
            Scheme::Standard,
            &delivered,
            payload,
            std::slice::from_ref(&key),
            FIVE_MINUTES,
            1614265330,
        );
        assert_eq!(verified.unwrap().delivery, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        // One byte more, or the timestamp out of tolerance: refused.
        assert_eq!(
            verify(
                Scheme::Standard,
                &delivered,
                b"{\"test\": 2432232315}",
                std::slice::from_ref(&key),
                FIVE_MINUTES,
                1614265330
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(
                Scheme::Standard,
                &delivered,
                payload,
                &[key],
                FIVE_MINUTES,
                1614265330 + 301
            ),
            Err(Refusal::OutOfTolerance)
        );
    }

    // GitHub's documented example ("Validating webhook deliveries"): secret "It's a
    // Secret to Everybody" and payload "Hello, World!".
    #[test]
    fn the_github_documentation_example_verifies() {
        let delivered = headers(&[
            (
                "x-hub-signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
            ("x-github-delivery", "d-1"),
        ]);
        let secret = b"It's a Secret to Everybody".to_vec();
        let other = b"another secret, being rotated in".to_vec();
        assert!(verify(
            Scheme::GitHub,
            &delivered,
            b"Hello, World!",
            &[other.clone(), secret],
            FIVE_MINUTES,
            0
        )
        .is_ok());
        assert_eq!(
            verify(
                Scheme::GitHub,
                &delivered,
                b"Hello, World!",
                &[other],
                FIVE_MINUTES,
                0
            ),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn a_stripe_header_needs_its_timestamp_and_a_v1_signature() {
        for field in ["v1=00", "t=1", "t=1,v0=00", "garbage"] {
            let delivered = headers(&[("stripe-signature", field)]);
            assert_eq!(
                verify(
                    Scheme::Stripe,
                    &delivered,
                    b"{}",
                    &[b"k".to_vec()],
                    FIVE_MINUTES,
                    1
                ),
                Err(Refusal::Missing),
                "{field}"
            );
        }
        let twice = headers(&[
            ("stripe-signature", "t=1,v1=00"),
            ("stripe-signature", "t=1,v1=00"),
        ]);
        assert_eq!(
            verify(
                Scheme::Stripe,
                &twice,
                b"{}",
                &[b"k".to_vec()],
                FIVE_MINUTES,
                1
            ),
            Err(Refusal::Missing)
        );
    }
}
