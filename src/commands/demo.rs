//! `usher demo`: the shipped routes.yaml, served on 127.0.0.1 with one in-process echo
//! server standing in for each upstream service, so a newcomer sees the gateway work on a
//! fresh machine with nothing else installed.

use crate::echo::EchoServer;
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The shipped configuration, compiled into the binary.
pub const SHIPPED_ROUTES: &str = include_str!("../../routes.yaml");

pub fn demo(port: u16, admin_port: u16) -> i32 {
    crate::telemetry::logging::init();
    match prepare(port, admin_port) {
        Ok(path) => super::run::run(&path, None),
        Err(message) => {
            eprintln!("usher demo: {message}");
            1
        }
    }
}

/// Starts the echo upstreams and writes the demo configuration; returns its path.
fn prepare(port: u16, admin_port: u16) -> Result<PathBuf, String> {
    let mut document: Value = serde_yaml::from_str(SHIPPED_ROUTES).map_err(|e| e.to_string())?;
    let names: Vec<String> = document["upstreams"]
        .as_mapping()
        .ok_or("the shipped routes.yaml has no upstreams")?
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let addresses = start_echo_servers(names.clone())?;
    document["listeners"]["public"] =
        serde_yaml::to_value(serde_json::json!({"address": format!("127.0.0.1:{port}")}))
            .map_err(|e| e.to_string())?;
    document["listeners"]["admin"]["address"] = Value::from(format!("127.0.0.1:{admin_port}"));
    for (name, address) in names.iter().zip(&addresses) {
        document["upstreams"][name.as_str()]["targets"] =
            Value::Sequence(vec![Value::from(address.to_string())]);
    }
    let directory = std::env::temp_dir().join(format!("usher-demo-{}", std::process::id()));
    std::fs::create_dir_all(&directory).map_err(|e| e.to_string())?;
    let path = directory.join("routes.yaml");
    let text = serde_yaml::to_string(&document).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    print_banner(port, admin_port, &path);
    Ok(path)
}

/// Runs one echo server per upstream on a small runtime of its own, for the process's life.
fn start_echo_servers(names: Vec<String>) -> Result<Vec<SocketAddr>, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("usher-demo-upstreams".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the demo upstreams' runtime");
            runtime.block_on(async move {
                let mut servers = Vec::new();
                for name in &names {
                    match EchoServer::start(name).await {
                        Ok(server) => servers.push(server),
                        Err(e) => {
                            let _ = sender.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
                let _ = sender.send(Ok(servers.iter().map(|s| s.addr).collect()));
                std::future::pending::<()>().await;
            });
        })
        .map_err(|e| e.to_string())?;
    receiver.recv().map_err(|e| e.to_string())?
}

fn print_banner(port: u16, admin_port: u16, path: &std::path::Path) {
    let base = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    println!(
        r#"
Usher demo: the shipped routes.yaml, every upstream replaced by an echo server.
Config in use (edit it and save: Usher reloads it live): {path}

Try:
  # a public route, forwarded to auth-service as /auth/login (the echo shows what arrived)
  curl -s {base}/api/v1/auth/login -d '{{"email":"a@b.c"}}'
  # a protected route without credentials: 401 in Usher's error shape
  curl -si {base}/api/v1/venues/7
  # a spoofed tenant header on a public route is stripped before forwarding
  curl -s {base}/api/v1/auth/register -H 'x-tenant-id: victim' -X POST
  # path tricks are normalized or refused
  curl -si '{base}/api/v1/auth/login/..%2f..%2fvenues'
  # no such route
  curl -si {base}/nope
  # probes, health report and metrics on the admin port
  curl -s {admin}/health/ready
  curl -s {admin}/health
  curl -s {admin}/metrics | grep usher_http_requests_total
"#,
        path = path.display()
    );
}
