//! A minimal HTTP/1.1 GET on a fresh connection, for the few requests Usher makes itself:
//! JWKS fetches, user-status and venue lookups, and `usher probe`; and the connections the
//! trace exporter posts over.
//!
//! `https://` URLs are verified against the system's CA certificates, plus the file in
//! `SSL_CERT_FILE` or the directory in `SSL_CERT_DIR` (for a private CA), and the URL's host
//! name; there is no way to turn verification off.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::OnceLock;
use tokio::io::{AsyncRead, AsyncWrite};

/// A GET on a fresh connection; the status of the answer.
pub async fn get(url: &str) -> Result<http::StatusCode, String> {
    get_body(url, 0).await.map(|(status, _)| status)
}

/// A GET on a fresh connection; the status and up to `max_body` bytes of body.
///
/// Boxed, like a Redis call (`store::redis`): lookups and key refreshes are awaited inside
/// each request's admission, and the connect, TLS and hyper futures would otherwise be part
/// of every request's state, fetching or not.
pub async fn get_body(url: &str, max_body: usize) -> Result<(http::StatusCode, Bytes), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    Box::pin(exchange(&uri, max_body)).await
}

/// A connection that carries HTTP: a TCP stream, or TLS over one.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// A connection to `uri`'s host and port, verified as this module says when it is
/// `https://`.
async fn open(uri: &http::Uri) -> Result<Box<dyn Stream>, String> {
    let host = uri.host().ok_or("no host")?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(other) => return Err(format!("unsupported scheme {other}")),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // An IPv6 literal comes bracketed in the URI, not in the socket address.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((address, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if !tls {
        return Ok(Box::new(stream));
    }
    // Loading the CA certificates is the costly part: once per process.
    static CONNECTOR: OnceLock<Result<tokio_native_tls::TlsConnector, String>> = OnceLock::new();
    let connector = CONNECTOR
        .get_or_init(|| {
            native_tls::TlsConnector::new()
                .map(tokio_native_tls::TlsConnector::from)
                .map_err(|e| format!("tls: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let stream = connector
        .connect(address, stream)
        .await
        .map_err(|e| format!("tls handshake: {e}"))?;
    Ok(Box::new(stream))
}

/// An HTTP/1.1 connection to `uri`'s host ([`open`]), its driver running on this runtime:
/// the sender, and the driver's task (which ends when the connection does). The OTLP
/// exporter keeps one open (`telemetry::traces::client`).
pub async fn connect<B>(
    uri: &http::Uri,
) -> Result<(SendRequest<B>, tokio::task::JoinHandle<()>), String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = open(uri).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, driver))
}

/// The request target for `uri` on its own host: its path and query.
pub fn origin_form(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The `Host` a request to `uri` names: never user information, should a URL carry any.
pub fn host_header(uri: &http::Uri) -> &str {
    uri.authority()
        .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or_default())
}

async fn exchange(uri: &http::Uri, max_body: usize) -> Result<(http::StatusCode, Bytes), String> {
    let (mut sender, connection) = connect(uri).await?;
    let request = http::Request::get(origin_form(uri))
        .header(http::header::HOST, host_header(uri))
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
