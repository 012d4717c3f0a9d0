//! Path normalization against a lenient decoder: generated paths of percent-encoded bytes
//! (valid and invalid UTF-8, overlong forms, dot segments, separators, parameters) must
//! mean the same to Usher's routing and authentication as to an upstream that decodes
//! everything it can. Checked on `usher::path::normalize` for many paths, and through the
//! running gateway for a sample, where a path routed to the public prefix must never read,
//! to the upstream, as one outside it.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pieces paths are made of: plain text, dots and separators in every encoding, overlong
/// and broken UTF-8, valid UTF-8, parameters.
const PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "public",
    "private",
    "a",
    "..",
    ".",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2f",
    "%5c",
    "\\",
    "%c0%ae",
    "%c0%af",
    "%e0%80%ae",
    "%c1%9c",
    "%C3%A9",
    "é",
    "%41",
    "%80",
    "%C3",
    "%ff",
    "%ed%a0%80",
    ";",
    "%3b",
    ";x=1",
    "%00",
    "%",
    "~",
    "%7e",
];

fn generated(rng: &mut StdRng) -> String {
    let mut path = String::from("/");
    for _ in 0..rng.gen_range(1..8) {
        path.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
    }
    path
}

/// What a lenient upstream makes of a path: every escape decoded, UTF-8 decoded without
/// checking for overlong forms or surrogates, backslashes taken as slashes, `;` parameters
/// cut from each segment, and dot segments removed. `None` where it would not climb above
/// the root.
fn lenient_segments(path: &str) -> Option<Vec<String>> {
    let text = lenient_utf8(&percent_decode(path.as_bytes())).replace('\\', "/");
    let mut kept: Vec<String> = Vec::new();
    for segment in text.split('/').skip(1) {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop()?;
            }
            other => kept.push(other.to_string()),
        }
    }
    Some(kept)
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let value = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match value {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// UTF-8 as an old, lenient decoder reads it: overlong forms and surrogates accepted.
fn lenient_utf8(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (len, initial) = match b {
            0x00..=0x7f => (1, b as u32),
            0xc0..=0xdf => (2, (b & 0x1f) as u32),
            0xe0..=0xef => (3, (b & 0x0f) as u32),
            0xf0..=0xf7 => (4, (b & 0x07) as u32),
            _ => (0, 0),
        };
        let tail = bytes.get(i + 1..i + len.max(1));
        match tail {
            Some(tail) if len > 0 && tail.iter().all(|c| c & 0xc0 == 0x80) => {
                let cp = tail
                    .iter()
                    .fold(initial, |cp, c| (cp << 6) | (c & 0x3f) as u32);
                out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                i += len;
            }
            _ => {
                out.push('\u{fffd}');
                i += 1;
            }
        }
    }
    out
}

/// The segments Usher routes by: the normalized path's, escapes decoded strictly.
fn strict_segments(normalized: &str) -> Vec<String> {
    normalized
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.split(';').next().unwrap_or("");
            String::from_utf8(percent_decode(s.as_bytes())).expect("normalized paths are UTF-8")
        })
        .collect()
}

#[test]
fn normalized_paths_mean_the_same_to_a_lenient_decoder() {
    let mut rng = StdRng::seed_from_u64(0x05e7);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..50_000 {
        let raw = generated(&mut rng);
        let Ok(normalized) = usher::path::normalize(&raw) else {
            refused += 1;
            continue;
        };
        accepted += 1;
        assert_eq!(
            usher::path::normalize(&normalized).as_deref(),
            Ok(&*normalized),
            "normalizing {raw} is not idempotent"
        );
        assert_eq!(
            lenient_segments(&normalized),
            Some(strict_segments(&normalized)),
            "{raw} normalizes to {normalized}, which a lenient upstream reads otherwise"
        );
    }
    assert!(
        accepted > 5_000 && refused > 5_000,
        "{accepted} accepted, {refused} refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_routed_as_public_stay_public_at_the_upstream() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&format!(
        r#"
{}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: open, match: {{ path: /public }}, upstream: svc, public: true }}
  - {{ name: rest, match: {{ path: / }}, upstream: svc }}
"#,
        unused_jwt_section(),
        upstream.addr
    ))
    .await;
    let mut rng = StdRng::seed_from_u64(0xbad_5eed);
    let mut routed = 0;
    for _ in 0..400 {
        let raw = format!("/public{}", generated(&mut rng));
        let request = format!("GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = raw_request(gateway.public, request.as_bytes()).await;
        let status = raw_status(&response);
        assert!(
            [200, 400, 401].contains(&status),
            "{raw}: {status}\n{response}"
        );
        if status != 200 {
            continue;
        }
        routed += 1;
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let seen: serde_json::Value = serde_json::from_str(body).unwrap();
        let forwarded = seen["path"].as_str().unwrap();
        let segments = lenient_segments(forwarded);
        assert_eq!(
            segments
                .as_ref()
                .and_then(|s| s.first())
                .map(String::as_str),
            Some("public"),
            "{raw} was routed as public and reached the upstream as {forwarded}"
        );
    }
    assert!(routed > 50, "only {routed} of 400 paths were routed");
}
