//! A rejection as bytes: its JSON body, its head (the security headers every response
//! carries, the gateway's own Content-Security-Policy, what the rejection adds), and
//! writing both to the client or, below Pingora, to the connection.

use super::security_headers::{self, GATEWAY_CSP};
use super::Rejection;
use crate::telemetry::correlation;
use bytes::Bytes;
use http::Method;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

impl Rejection {
    pub fn body(&self, request_id: &str) -> Bytes {
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": self.message(),
            "request_id": request_id,
        });
        if let Some(details) = self.details() {
            error["details"] = details;
        }
        Bytes::from(serde_json::json!({ "error": error }).to_string())
    }

    /// What a client acts on beyond the code, for the few refusals that have it.
    fn details(&self) -> Option<serde_json::Value> {
        match self {
            Rejection::ApprovalRequired {
                id,
                approvals,
                needed,
                status,
            } => Some(serde_json::json!({
                "approval_id": id,
                "approvals": approvals,
                "needed": needed,
                "status": status,
            })),
            _ => None,
        }
    }

    /// The whole response as bytes on an HTTP/1.1 connection that closes after it, for
    /// answers written below Pingora (at the connection: a late head, a head Pingora's
    /// parser refused). HSTS is added on TLS connections.
    pub fn wire_response(&self, request_id: &str, tls: bool) -> Vec<u8> {
        let body = self.body(request_id);
        let status =
            http::StatusCode::from_u16(self.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
        let mut response = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        if let Ok(header) = self.header(request_id, body.len(), tls, &[]) {
            for (name, value) in header.headers.iter() {
                response.extend_from_slice(name.as_str().as_bytes());
                response.extend_from_slice(b": ");
                response.extend_from_slice(value.as_bytes());
                response.extend_from_slice(b"\r\n");
            }
        }
        response.extend_from_slice(b"connection: close\r\n\r\n");
        response.extend_from_slice(&body);
        response
    }

    /// The response head, with HSTS on a TLS listener; `extra` adds headers that depend on
    /// the request (CORS, RateLimit).
    pub fn header(
        &self,
        request_id: &str,
        body_length: usize,
        tls: bool,
        extra: &[(&'static str, String)],
    ) -> Result<ResponseHeader> {
        let mut header = ResponseHeader::build(self.status(), Some(12 + extra.len()))?;
        security_headers::apply(&mut header, tls)?;
        header.insert_header("content-security-policy", GATEWAY_CSP)?;
        for (name, value) in extra {
            header.append_header(*name, value.as_str())?;
        }
        header.insert_header("content-type", "application/json")?;
        header.insert_header("content-length", body_length.to_string())?;
        header.insert_header("cache-control", "no-store")?;
        header.insert_header_static(&correlation::X_REQUEST_ID, request_id)?;
        if let Some(seconds) = self.retry_after() {
            header.insert_header("retry-after", seconds.to_string())?;
        }
        match self {
            Rejection::MethodNotAllowed(allowed) if allowed.is_empty() => {
                header.insert_header("allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")?;
            }
            Rejection::MethodNotAllowed(allowed) => {
                let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                header.insert_header("allow", allowed.join(", "))?;
            }
            Rejection::Unauthenticated => header.insert_header("www-authenticate", "Bearer")?,
            _ => {}
        }
        Ok(header)
    }
}

/// Writes `rejection` as the whole response; returns the body bytes sent.
pub async fn send(
    session: &mut Session,
    rejection: &Rejection,
    request_id: &str,
    tls: bool,
    extra: &[(&'static str, String)],
) -> Result<usize> {
    let body = rejection.body(request_id);
    let header = rejection.header(request_id, body.len(), tls, extra)?;
    let head_only = session.req_header().method == Method::HEAD;
    if !session.is_body_empty() {
        // The unread body would be taken for the next request on this connection.
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if head_only {
        return Ok(0);
    }
    let sent = body.len();
    session.write_response_body(Some(body), true).await?;
    Ok(sent)
}
