//! A fixed, fast upstream for the load benchmark when nginx is not available: answers every
//! request with the same ~100-byte JSON body, on one thread.
//!
//! `bench_upstream <listen addr>`

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

const BODY: &str = r#"{"id":"8f2c1a","event":"e-42","section":"A","row":7,"seat":12,"price_cents":4500,"status":"held"}"#;

fn main() {
    let listen = std::env::args()
        .nth(1)
        .expect("usage: bench_upstream <listen addr>");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                            .expect("static response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
