//! A small HTTP server that answers every request with a JSON echo of what it received:
//! the service name, method, path and headers. `usher demo` runs one per upstream in place of
//! the platform's services, and the integration tests use it as a real upstream whose
//! behaviour (delay, status) they control and whose traffic they count.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::Digest;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What the server does; tests change it while it runs.
#[derive(Default)]
pub struct Behaviour {
    /// Delay before answering, in milliseconds.
    pub delay_ms: AtomicU64,
    /// Status to answer with; 0 means 200.
    pub status: AtomicU16,
    /// Extra headers on every answer.
    pub headers: std::sync::Mutex<Vec<(String, String)>>,
}

pub struct EchoServer {
    pub addr: SocketAddr,
    /// Requests received, health checks included.
    pub hits: Arc<AtomicUsize>,
    pub behaviour: Arc<Behaviour>,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Listens on `127.0.0.1:0`.
    pub async fn start(name: &str) -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, name))
    }

    pub fn serve(listener: TcpListener, name: &str) -> EchoServer {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let hits = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Behaviour::default());
        let name: Arc<str> = Arc::from(name);
        let task = tokio::spawn(accept_loop(
            listener,
            name,
            Arc::clone(&hits),
            Arc::clone(&behaviour),
        ));
        EchoServer {
            addr,
            hits,
            behaviour,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.behaviour
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_status(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::SeqCst);
    }

    /// Adds a header to every answer from now on.
    pub fn add_response_header(&self, name: &str, value: &str) {
        self.behaviour
            .headers
            .lock()
            .expect("behaviour lock")
            .push((name.to_string(), value.to_string()));
    }
}

impl Drop for EchoServer {
    /// Closes the listener and every open connection.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
    behaviour: Arc<Behaviour>,
) {
    // Connections live in this set, so aborting the accept loop closes them too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, hits, behaviour) =
            (Arc::clone(&name), Arc::clone(&hits), Arc::clone(&behaviour));
        connections.spawn(async move {
            let service = service_fn(move |request| {
                hits.fetch_add(1, Ordering::SeqCst);
                answer(request, Arc::clone(&name), Arc::clone(&behaviour))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    request: Request<Incoming>,
    name: Arc<str>,
    behaviour: Arc<Behaviour>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in &parts.headers {
        headers
            .entry(header.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echo = serde_json::json!({
        "service": &*name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body_bytes": body.len(),
        "body_sha256": sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    });
    let status = match behaviour.status.load(Ordering::SeqCst) {
        0 => 200,
        status => status,
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in behaviour.headers.lock().expect("behaviour lock").iter() {
        response = response.header(name.as_str(), value.as_str());
    }
    Ok(response
        .body(Full::new(Bytes::from(echo.to_string())))
        .expect("valid response parts"))
}
