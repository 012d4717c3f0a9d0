//! A token's JSON as it was written, checked before anything reads it: `jsonwebtoken` and
//! `serde_json` keep the last of two members with one name, so `{"roles":["customer"],
//! "roles":["admin"]}` would mean whatever the reader's parser picks. RFC 7519 §4 lets a
//! verifier refuse such a token, and Usher does, for the JOSE header and the claims alike,
//! at any depth. The header may not carry `crit` either: Usher understands no extension,
//! and RFC 7515 §4.1.11 requires refusing a critical one the verifier does not understand
//! (an empty list is invalid too).

use super::events::Severity;
use super::AuthFailure;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

pub const DUPLICATE_MEMBER: &str = "duplicate_member";
pub const CRITICAL_EXTENSION: &str = "critical_extension";

/// Checks the header and claims segments of a compact JWS. Malformed segments pass: the
/// verifier that runs next refuses them with its own reason.
pub fn check(token: &str) -> Result<(), AuthFailure> {
    let mut segments = token.split('.');
    let (Some(header), Some(claims)) = (segments.next(), segments.next()) else {
        return Ok(());
    };
    for (index, segment) in [header, claims].into_iter().enumerate() {
        let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment) else {
            return Ok(());
        };
        match serde_json::from_slice::<Members>(&json) {
            Ok(Members { crit }) if index == 0 && crit => {
                return Err(AuthFailure::new(CRITICAL_EXTENSION, Severity::Medium));
            }
            Ok(_) => {}
            Err(e) if e.to_string().starts_with(DUPLICATE) => {
                return Err(AuthFailure::new(DUPLICATE_MEMBER, Severity::Medium));
            }
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

const DUPLICATE: &str = "duplicate member";

/// Any JSON value, refused when one of its objects names a member twice; remembers
/// whether the top-level object has a `crit` member.
struct Members {
    crit: bool,
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_i64<E>(self, _: i64) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_u64<E>(self, _: u64) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_f64<E>(self, _: f64) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_str<E>(self, _: &str) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_unit<E>(self) -> Result<Members, E> {
        Ok(Members { crit: false })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Members, A::Error> {
        while seq.next_element::<Members>()?.is_some() {}
        Ok(Members { crit: false })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<Members>()?;
            if !seen.insert(name) {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Members {
            crit: seen.contains("crit"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, claims: &str) -> String {
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", encode(header), encode(claims))
    }

    fn reason(header: &str, claims: &str) -> Option<&'static str> {
        check(&token(header, claims)).err().map(|f| f.reason)
    }

    #[test]
    fn refuses_duplicate_members_in_header_and_claims_at_any_depth() {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        assert_eq!(reason(header, r#"{"sub":"a","roles":["x"]}"#), None);
        for claims in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"roles":["customer"],"roles":["admin"]}"#,
            r#"{"tenant_id":"a","exp":1,"tenant_id":"b"}"#,
            r#"{"ctx":{"tier":"free","tier":"gold"}}"#,
            r#"{"list":[{"a":1,"a":2}]}"#,
        ] {
            assert_eq!(reason(header, claims), Some(DUPLICATE_MEMBER), "{claims}");
        }
        assert_eq!(
            reason(r#"{"alg":"HS256","alg":"none"}"#, "{}"),
            Some(DUPLICATE_MEMBER)
        );
        assert_eq!(
            reason(r#"{"alg":"HS256","typ":"JWT","typ":"at+jwt"}"#, "{}"),
            Some(DUPLICATE_MEMBER)
        );
    }

    #[test]
    fn refuses_any_critical_extension() {
        for header in [
            r#"{"alg":"HS256","crit":["exp-ext"],"exp-ext":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        ] {
            assert_eq!(reason(header, "{}"), Some(CRITICAL_EXTENSION), "{header}");
        }
        assert_eq!(
            reason(
                r#"{"alg":"HS256"}"#,
                r#"{"crit":["in claims is no header"]}"#
            ),
            None
        );
    }

    #[test]
    fn leaves_malformed_tokens_to_the_verifier() {
        assert!(check("not a token").is_ok());
        assert!(check("%%%.%%%.sig").is_ok());
        assert!(check(&token("not json", "{}")).is_ok());
    }
}
