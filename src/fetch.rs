//! A minimal HTTP/1.1 GET on a fresh connection, for the few requests Usher makes itself:
//! JWKS fetches, user-status and venue lookups, and `usher probe`. `http://` only.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// A GET on a fresh connection; the status of the answer.
pub async fn get(url: &str) -> Result<http::StatusCode, String> {
    get_body(url, 0).await.map(|(status, _)| status)
}

/// A GET on a fresh connection; the status and up to `max_body` bytes of body.
pub async fn get_body(url: &str, max_body: usize) -> Result<(http::StatusCode, Bytes), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "usher")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = if max_body > 0 {
        http_body_util::Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
    } else {
        Bytes::new()
    };
    connection.abort();
    Ok((status, body))
}
