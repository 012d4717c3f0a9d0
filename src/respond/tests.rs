//! Each rejection's status, code, headers and body, and the table of them in the docs.

use super::*;

#[test]
fn body_has_the_stable_shape() {
    let rejection = Rejection::NoHealthyPeer {
        upstream: "tickets".into(),
    };
    let body: serde_json::Value = serde_json::from_slice(&rejection.body("r-1")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "upstream_unavailable", "message": "service tickets is unavailable", "request_id": "r-1"}})
    );
}

/// One of each rejection; the match fails to compile when a variant is added and not
/// listed here.
fn every_rejection() -> Vec<Rejection> {
    let upstream = || "svc".to_string();
    let wait = Duration::from_secs(1);
    let all = vec![
        Rejection::BadPath(PathError::Nul),
        Rejection::NoRoute,
        Rejection::MethodNotAllowed(vec![Method::GET]),
        Rejection::Unauthenticated,
        Rejection::PayloadTooLarge { limit: 1 },
        Rejection::NotReady,
        Rejection::CircuitOpen {
            upstream: upstream(),
            retry_after: wait,
        },
        Rejection::Busy {
            upstream: upstream(),
        },
        Rejection::NoHealthyPeer {
            upstream: upstream(),
        },
        Rejection::UpstreamRefused {
            upstream: upstream(),
        },
        Rejection::UpstreamTimeout {
            upstream: upstream(),
        },
        Rejection::BadGateway {
            upstream: upstream(),
        },
        Rejection::BadRequest,
        Rejection::Malformed("x"),
        Rejection::UriTooLong,
        Rejection::RequestTimeout,
        Rejection::HeadersTooLarge,
        Rejection::Forbidden,
        Rejection::CorsRefused,
        Rejection::AuthUnavailable,
        Rejection::RateLimited { retry_after: wait },
        Rejection::RateLimitUnavailable { retry_after: wait },
        Rejection::Overloaded { retry_after: wait },
        Rejection::InvalidParameter("id".into()),
        Rejection::UnsupportedMediaType,
        Rejection::MalformedJson,
        Rejection::InvalidBody(vec!["/seat".into()]),
        Rejection::IdempotencyKeyMissing,
        Rejection::IdempotencyKeyInvalid("x"),
        Rejection::IdempotencyInFlight,
        Rejection::IdempotencyOutcomeUnknown,
        Rejection::IdempotencyNotReplayable,
        Rejection::IdempotencyKeyReused,
        Rejection::IdempotencyUnavailable,
        Rejection::AmountInvalid {
            pointer: "/ticketIds".into(),
            what: "an array",
        },
        Rejection::AmountOverCap {
            policy: "mint".into(),
            cap: 100,
        },
        Rejection::BudgetExhausted { retry_after: wait },
        Rejection::ApprovalRequired {
            id: "0123456789abcdef0123456789abcdef".into(),
            approvals: 0,
            needed: 1,
            status: "/api/v1/approvals/0123456789abcdef0123456789abcdef".into(),
        },
        Rejection::ApprovalNotFound,
        Rejection::ApprovalSelf,
        Rejection::ApprovalExpired,
        Rejection::ApprovalClosed,
        Rejection::ApprovalDuplicate,
        Rejection::ApprovalUsed,
        Rejection::ApprovalUnavailable,
        Rejection::WebhookSignatureInvalid("x"),
        Rejection::WebhookReplayed,
        Rejection::WebhookUnavailable,
        Rejection::Internal,
    ];
    for rejection in &all {
        match rejection {
            Rejection::BadPath(_)
            | Rejection::NoRoute
            | Rejection::MethodNotAllowed(_)
            | Rejection::Unauthenticated
            | Rejection::PayloadTooLarge { .. }
            | Rejection::NotReady
            | Rejection::CircuitOpen { .. }
            | Rejection::Busy { .. }
            | Rejection::NoHealthyPeer { .. }
            | Rejection::UpstreamRefused { .. }
            | Rejection::UpstreamTimeout { .. }
            | Rejection::BadGateway { .. }
            | Rejection::BadRequest
            | Rejection::Malformed(_)
            | Rejection::UriTooLong
            | Rejection::RequestTimeout
            | Rejection::HeadersTooLarge
            | Rejection::Forbidden
            | Rejection::CorsRefused
            | Rejection::AuthUnavailable
            | Rejection::RateLimited { .. }
            | Rejection::RateLimitUnavailable { .. }
            | Rejection::Overloaded { .. }
            | Rejection::InvalidParameter(_)
            | Rejection::UnsupportedMediaType
            | Rejection::MalformedJson
            | Rejection::InvalidBody(_)
            | Rejection::IdempotencyKeyMissing
            | Rejection::IdempotencyKeyInvalid(_)
            | Rejection::IdempotencyInFlight
            | Rejection::IdempotencyOutcomeUnknown
            | Rejection::IdempotencyNotReplayable
            | Rejection::IdempotencyKeyReused
            | Rejection::IdempotencyUnavailable
            | Rejection::AmountInvalid { .. }
            | Rejection::AmountOverCap { .. }
            | Rejection::BudgetExhausted { .. }
            | Rejection::ApprovalRequired { .. }
            | Rejection::ApprovalNotFound
            | Rejection::ApprovalSelf
            | Rejection::ApprovalExpired
            | Rejection::ApprovalClosed
            | Rejection::ApprovalDuplicate
            | Rejection::ApprovalUsed
            | Rejection::ApprovalUnavailable
            | Rejection::WebhookSignatureInvalid(_)
            | Rejection::WebhookReplayed
            | Rejection::WebhookUnavailable
            | Rejection::Internal => {}
        }
    }
    all
}

/// docs/routes.md's error table lists exactly the (status, code) pairs Usher answers,
/// and every answer, as bytes on the wire too, has the one JSON shape.
#[test]
fn the_error_table_lists_every_answer_in_its_shape() {
    let docs = include_str!("../../docs/routes.md");
    let table = docs.split("## Gateway errors").nth(1).expect("the section");
    let documented: std::collections::BTreeSet<(u16, String)> = table
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let status: u16 = cells.next()?.parse().ok()?;
            let codes = cells.next()?;
            Some(
                codes
                    .split(',')
                    .map(|code| (status, code.trim().trim_matches('`').to_string()))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    let answered: std::collections::BTreeSet<(u16, String)> = every_rejection()
        .iter()
        .map(|r| (r.status(), r.code().to_string()))
        .collect();
    assert_eq!(documented, answered);
    for rejection in every_rejection() {
        let wire = String::from_utf8(rejection.wire_response("r-1", false)).unwrap();
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {} ", rejection.status())),
            "{head}"
        );
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], rejection.code(), "{body}");
        assert_eq!(body["error"]["request_id"], "r-1");
        assert!(body["error"]["message"].is_string());
    }
}

#[test]
fn circuit_open_rounds_retry_after_up() {
    let rejection = Rejection::CircuitOpen {
        upstream: "t".into(),
        retry_after: Duration::from_millis(1500),
    };
    let header = rejection.header("r", 0, false, &[]).unwrap();
    assert_eq!(header.status.as_u16(), 503);
    assert_eq!(header.headers["retry-after"], "2");
}
