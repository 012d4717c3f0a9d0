//! The HTTP client the OTLP exporter posts through: Usher's own hyper over the connections
//! `crate::fetch` opens (`https://` verified as it says), one kept alive between batches
//! and opened again after any failure, each request bounded by the OTLP timeout. Only the
//! exporter's thread uses it.

use crate::fetch;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use opentelemetry_http::{HttpClient, HttpError};
use std::time::Duration;
use tokio::sync::Mutex;

/// The most of a collector's answer that is read: it says only how many spans it refused.
const MAX_RESPONSE: usize = 64 * 1024;

type Connection = Option<(http::uri::Authority, SendRequest<Full<Bytes>>)>;

#[derive(Debug)]
pub struct CollectorClient {
    connection: Mutex<Connection>,
    timeout: Duration,
}

impl CollectorClient {
    pub fn new(timeout: Duration) -> Self {
        CollectorClient {
            connection: Mutex::new(None),
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let mut connection = self.connection.lock().await;
        match tokio::time::timeout(self.timeout, send(&mut connection, request)).await {
            Ok(sent) => sent,
            Err(_) => {
                // Whatever the connection was in the middle of, it is not reused.
                *connection = None;
                Err(format!("no answer within {} ms", self.timeout.as_millis()).into())
            }
        }
    }
}

/// One request on the kept connection, or on a new one. A kept connection the collector
/// (or a load balancer before it) closed while idle fails at once: the request is sent
/// again, once, on a new one.
async fn send(
    connection: &mut Connection,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let uri = std::mem::take(&mut parts.uri);
    let authority = uri.authority().cloned().ok_or("the endpoint has no host")?;
    parts.uri = fetch::origin_form(&uri).parse()?;
    parts
        .headers
        .insert(http::header::HOST, fetch::host_header(&uri).parse()?);
    let request = || {
        let mut request = http::Request::new(Full::new(body.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        request
    };
    loop {
        let kept = connection
            .as_mut()
            .filter(|(to, sender)| *to == authority && !sender.is_closed() && sender.is_ready());
        let reused = kept.is_some();
        let sender = match kept {
            Some((_, sender)) => sender,
            None => {
                // The driver's task ends with the connection.
                let (sender, _driver) = fetch::connect(&uri).await?;
                &mut connection.insert((authority.clone(), sender)).1
            }
        };
        let response = match sender.send_request(request()).await {
            Ok(response) => response,
            Err(e) => {
                *connection = None;
                if reused {
                    continue;
                }
                return Err(format!("request: {e}").into());
            }
        };
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE)
            .collect()
            .await;
        return match body {
            Ok(body) => Ok(http::Response::from_parts(parts, body.to_bytes())),
            Err(e) => {
                *connection = None;
                Err(format!("response body: {e}").into())
            }
        };
    }
}
