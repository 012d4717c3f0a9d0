//! Idempotency records in the Redis every replica shares, so a retry that lands on another
//! replica is answered from the first one's record. Each record is one hash (under one
//! hash tag, so it works on Redis Cluster) that expires by itself after its `ttl`; a
//! reservation and a completion are one atomic script each, two round trips per request.
//! Times come from Redis's clock, so replicas with skewed clocks agree on leases.

use super::{Fingerprint, Reserved, Stored};
use crate::store::redis::{LuaScript, Redis, StoreError};
use bytes::Bytes;
use fred::types::Value;
use http::{HeaderName, HeaderValue};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Takes the key for a request, or says what the key already holds.
static RESERVE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r#"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local record = redis.call('HMGET', KEYS[1], 'fp', 'state', 'lease')
if record[1] then
  if record[1] ~= ARGV[1] then return {'mismatch'} end
  if record[2] == 'f' then
    if tonumber(record[3]) > ms then return {'in_flight'} end
    return {'unknown'}
  end
  if record[2] == 'n' then return {'not_replayable'} end
  local answer = redis.call('HMGET', KEYS[1], 'status', 'headers', 'body')
  return {'replay', answer[1], answer[2], answer[3]}
end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'f', 'lease', ms + tonumber(ARGV[2]), 'token', ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), tonumber(ARGV[2])))
return {'fresh'}
"#,
    )
});

/// Records the answer of the reservation `token` (state `d`, or `n` when not kept).
static COMPLETE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r#"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'f' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
return 1
"#,
    )
});

/// Gives the reservation `token` back.
static RELEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r#"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'f' then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// The Redis key of a caller-scoped idempotency key: hashed, so any key fits, and tagged.
pub fn record_key(prefix: &str, scoped: &str) -> String {
    let digest = crate::digest::sha256_hex(&[scoped.as_bytes()], 32);
    format!("{prefix}idem:{{{digest}}}")
}

pub async fn reserve(
    redis: &Redis,
    key: &str,
    fingerprint: &Fingerprint,
    token: &str,
    lease: Duration,
    ttl: Duration,
) -> Result<Reserved, StoreError> {
    let fp = crate::digest::hex(fingerprint, fingerprint.len());
    let reply: Vec<Value> = redis
        .run_script(
            &RESERVE,
            || vec![key.to_string()],
            || {
                vec![
                    Value::from(fp.as_str()),
                    Value::from(lease.as_millis() as i64),
                    Value::from(ttl.as_millis() as i64),
                    Value::from(token),
                ]
            },
        )
        .await?;
    let text = |index: usize| {
        reply
            .get(index)
            .and_then(Value::as_bytes)
            .unwrap_or_default()
    };
    Ok(match text(0) {
        b"fresh" => Reserved::Fresh,
        b"mismatch" => Reserved::Mismatch,
        b"in_flight" => Reserved::InFlight,
        b"unknown" => Reserved::OutcomeUnknown,
        b"not_replayable" => Reserved::NotReplayable,
        b"replay" => {
            let status = std::str::from_utf8(text(1))
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Failed("a stored answer without a status".into()))?;
            Reserved::Replay(Arc::new(Stored {
                status,
                headers: parse_headers(text(2)),
                body: Bytes::copy_from_slice(text(3)),
            }))
        }
        other => {
            return Err(StoreError::Failed(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    })
}

pub async fn complete(
    redis: &Redis,
    key: &str,
    token: &str,
    answer: Option<&Stored>,
) -> Result<(), StoreError> {
    let (state, status, headers, body) = match answer {
        Some(answer) => (
            "d",
            answer.status.to_string(),
            write_headers(&answer.headers),
            answer.body.clone(),
        ),
        None => ("n", String::new(), Vec::new(), Bytes::new()),
    };
    let _: i64 = redis
        .run_script(
            &COMPLETE,
            || vec![key.to_string()],
            || {
                vec![
                    Value::from(token),
                    Value::from(state),
                    Value::from(status.as_str()),
                    Value::Bytes(Bytes::from(headers.clone())),
                    Value::Bytes(body.clone()),
                ]
            },
        )
        .await?;
    Ok(())
}

pub async fn release(redis: &Redis, key: &str, token: &str) -> Result<(), StoreError> {
    let _: i64 = redis
        .run_script(
            &RELEASE,
            || vec![key.to_string()],
            || vec![Value::from(token)],
        )
        .await?;
    Ok(())
}

/// `name:value` lines (a header value holds no line break).
fn write_headers(headers: &[(HeaderName, HeaderValue)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

fn parse_headers(bytes: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((
                HeaderName::from_bytes(&line[..colon]).ok()?,
                HeaderValue::from_bytes(&line[colon + 1..]).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_survive_the_round_trip() {
        let headers = vec![
            (
                HeaderName::from_static("location"),
                HeaderValue::from_static("/orders/1"),
            ),
            (
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("a=b; Path=/"),
            ),
            (
                HeaderName::from_static("x-empty"),
                HeaderValue::from_static(""),
            ),
        ];
        assert_eq!(parse_headers(&write_headers(&headers)), headers);
    }

    #[test]
    fn record_keys_are_tagged_and_hide_the_key() {
        let key = record_key("usher:", "t\0jwt\0u1\0order-1");
        assert!(
            key.starts_with("usher:idem:{") && key.ends_with('}'),
            "{key}"
        );
        assert!(!key.contains("order-1"));
        assert_ne!(key, record_key("usher:", "t\0jwt\0u2\0order-1"));
    }
}
