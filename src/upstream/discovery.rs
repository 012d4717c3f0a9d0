//! Resolves an upstream's `host:port` targets into backends, off the request path.
//!
//! Hostnames are looked up again on every refresh, so the pods behind a Kubernetes headless
//! Service are followed as they come and go. A failed lookup keeps the previous set: a DNS
//! hiccup must not empty a healthy pool.

use crate::config::Target;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct DnsDiscovery {
    targets: Vec<Target>,
}

impl DnsDiscovery {
    pub fn new(targets: Vec<Target>) -> Self {
        DnsDiscovery { targets }
    }

    /// Whether every target is an IP address, so there is nothing to re-resolve.
    pub fn is_static(&self) -> bool {
        self.targets
            .iter()
            .all(|t| t.host.parse::<IpAddr>().is_ok())
    }
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut backends = BTreeSet::new();
        for target in &self.targets {
            let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, target.port)],
                Err(_) => {
                    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
                    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                        Ok(Ok(found)) => found.collect(),
                        Ok(Err(e)) => {
                            return Error::e_explain(
                                ErrorType::ConnectNoRoute,
                                format!("resolving {}: {e}", target.host),
                            )
                        }
                        Err(_) => {
                            return Error::e_explain(
                                ErrorType::ConnectTimedout,
                                format!("resolving {} timed out", target.host),
                            )
                        }
                    }
                }
            };
            for address in addresses {
                backends.insert(Backend::new(&address.to_string())?);
            }
        }
        Ok((backends, HashMap::new()))
    }
}
