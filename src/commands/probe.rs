//! `usher probe`: ask the admin listener whether this Usher is ready. A container's
//! `HEALTHCHECK` runs it, so the image needs no curl or shell.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

pub fn probe(config: Option<&Path>, admin: &str, path: &str) -> i32 {
    let address = match config {
        Some(config) => match super::load_config(config) {
            Ok(config) => loopback(config.listeners.admin),
            Err(errors) => {
                eprint!("{errors}");
                return 1;
            }
        },
        None => match admin.parse::<SocketAddr>() {
            Ok(address) => address,
            Err(e) => {
                eprintln!("usher probe: invalid --admin \"{admin}\": {e}");
                return 1;
            }
        },
    };
    let url = format!("http://{address}{path}");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("usher probe: {e}");
            return 1;
        }
    };
    let answer =
        runtime.block_on(async { tokio::time::timeout(TIMEOUT, crate::fetch::get(&url)).await });
    match answer {
        Ok(Ok(status)) if status == http::StatusCode::OK => 0,
        Ok(Ok(status)) => {
            eprintln!("usher probe: {url} answered {status}");
            1
        }
        Ok(Err(reason)) => {
            eprintln!("usher probe: {url}: {reason}");
            1
        }
        Err(_) => {
            eprintln!("usher probe: {url} did not answer within {TIMEOUT:?}");
            1
        }
    }
}

/// A listener on every interface is asked through the loopback interface.
fn loopback(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], address.port()))
        }
        ip if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    }
}
