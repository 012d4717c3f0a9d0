//! The floor any Pingora-based proxy pays: a Pingora 0.9 proxy that forwards every request
//! to one upstream and does nothing else, with Pingora's defaults and glibc's allocator.
//! The load benchmark runs it beside Usher and nginx, built with Usher's release profile
//! (fat LTO, one codegen unit), and `bare_proxy_mimalloc` is the same proxy on mimalloc,
//! Usher's allocator.
//!
//! `bare_proxy <listen addr> <upstream addr> <threads>`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

struct Forward {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: bare_proxy <listen addr> <upstream addr> <threads>");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("threads is a number");
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Forward {
            upstream: upstream.clone(),
        },
    );
    proxy.threads = Some(threads);
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
