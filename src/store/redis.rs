//! The connection to the Redis every replica shares (standalone, Sentinel or Cluster).
//!
//! A call never waits longer than the configured deadline (twice that only when a script is
//! sent whole again after Redis lost it): fred fails commands at once while disconnected
//! (`fail_fast`) and keeps reconnecting in the background.
//!
//! Each proxy worker thread gets its own connection, made on that thread's runtime the first
//! time it needs one, so a call never hops to another thread and back: measured, that hop
//! cost more CPU than the Redis call itself (docs/benchmarks.md).

use crate::config::{Errors, RedisSpec, SecretRef};
use fred::clients::WithOptions;
use fred::prelude::*;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

/// A Lua script, named on the wire by its SHA-1.
pub struct LuaScript {
    lua: &'static str,
    sha: String,
}

impl LuaScript {
    pub fn new(lua: &'static str) -> Self {
        LuaScript {
            lua,
            sha: fred::types::scripts::Script::from_lua(lua)
                .sha1()
                .to_string(),
        }
    }
}

/// Connection settings with secrets resolved. Two equal settings reach the same store, so a
/// reload that does not change them keeps the client.
#[derive(Clone, PartialEq)]
pub struct RedisSettings {
    pub url: String,
    pub username: Option<String>,
    pub password: String,
    pub timeout: Duration,
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Reads what `spec` names from the environment; reports a problem at the key naming it.
pub fn resolve(spec: &RedisSpec, errors: &mut Errors) -> Option<RedisSettings> {
    let at = "rate_limiting.redis";
    let errors_before = errors.count();
    let mut read = |what: &SecretRef, key: &str| -> String {
        let (path, result) = match what {
            SecretRef::Literal(value) => return value.clone(),
            SecretRef::Env(name) => (
                format!("{at}.{key}_env"),
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set")),
            ),
            SecretRef::File(file) => (
                format!("{at}.{key}_file"),
                std::fs::read_to_string(file)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| format!("cannot read \"{file}\": {e}")),
            ),
        };
        match result {
            Ok(value) if value.is_empty() => {
                errors.error(path, "is empty");
                String::new()
            }
            Ok(value) => value,
            Err(message) => {
                errors.error(path, message);
                String::new()
            }
        }
    };
    let url = read(&spec.url, "url");
    let password = read(&spec.password, "password");
    // An unset or empty URL was reported above. One from the environment gets the same
    // checks as a literal one (which the configuration compiler already made).
    let problem = match &spec.url {
        _ if url.is_empty() => None,
        SecretRef::Env(_) => crate::config::check_redis_url(&url).err(),
        _ => None,
    }
    .or_else(|| {
        // Building the client (without connecting) is the check `Redis::connect` relies
        // on: past this point it cannot fail, so no configuration goes live without its store.
        (!url.is_empty())
            .then(|| {
                Config::from_url(&url)
                    .and_then(|config| Builder::from_config(config).build().map(|_| ()))
                    .err()
            })
            .flatten()
            .map(|e| format!("not a Redis URL Usher can use: {}", e.details()))
    });
    if let Some(message) = problem {
        let key = if matches!(spec.url, SecretRef::Env(_)) {
            "url_env"
        } else {
            "url"
        };
        errors.error(format!("{at}.{key}"), message);
    }
    (errors.count() == errors_before).then(|| RedisSettings {
        url,
        username: spec.username.clone(),
        password,
        timeout: spec.timeout,
        key_prefix: spec.key_prefix.clone(),
    })
}

fn store_error(error: fred::error::Error) -> StoreError {
    match error.kind() {
        ErrorKind::Timeout => StoreError::Timeout,
        _ => StoreError::Failed(error.to_string()),
    }
}

/// Why a call gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    Timeout,
    Failed(String),
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Failed(_) => "error",
        }
    }
}

pub struct Redis {
    builder: Builder,
    /// The control plane's connection: the first connection check and readiness probes.
    client: Client,
    /// The requests' connections, one per worker thread.
    per_thread: Mutex<HashMap<ThreadId, Client>>,
    settings: RedisSettings,
    options: Options,
}

impl Redis {
    /// Builds the client and starts connecting in the background; never waits for Redis.
    pub fn connect(settings: RedisSettings) -> Result<Redis, String> {
        let mut config = Config::from_url(&settings.url).map_err(|e| e.details().to_string())?;
        config.username = settings.username.clone();
        config.password = Some(settings.password.clone());
        // Keep trying in the background when Redis is down at startup: Usher serves anyway.
        config.fail_fast = false;
        // With fail_fast off even the first connection goes through the reconnect policy:
        // start at 1 ms (a worker thread's first decision waits for it) and back off to 1 s.
        let mut reconnect = ReconnectPolicy::new_exponential(0, 1, 1000, 2);
        reconnect.set_jitter(10);
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = settings.timeout)
            .set_policy(reconnect);
        let client = builder.build().map_err(|e| e.details().to_string())?;
        client.connect();
        Ok(Redis {
            builder,
            client,
            per_thread: Mutex::new(HashMap::new()),
            options: Options {
                timeout: Some(settings.timeout),
                fail_fast: true,
                max_attempts: Some(1),
                ..Default::default()
            },
            settings,
        })
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// This thread's connection, made (and waited for, within the deadline) on first use.
    async fn thread_client(&self) -> Result<Client, StoreError> {
        let thread = std::thread::current().id();
        let existing = self
            .per_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&thread)
            .cloned();
        if let Some(client) = existing {
            // Other requests on the thread may arrive while its connection is still being
            // made: they wait for it too (within the deadline) rather than fail at once and
            // count as Redis failures.
            if !client.is_connected() {
                let _ =
                    tokio::time::timeout(self.settings.timeout, client.wait_for_connect()).await;
            }
            return Ok(client);
        }
        let client = self
            .builder
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        client.connect();
        self.per_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(thread, client.clone());
        // Only the first request on a thread waits for the connection, within its deadline.
        let _ = tokio::time::timeout(self.settings.timeout, client.wait_for_connect()).await;
        Ok(client)
    }

    /// Runs `script` in one round trip (`EVALSHA`); on `NOSCRIPT`, after a Redis restart or
    /// failover, sends it whole (`EVAL`), which also caches it again and has a deadline of
    /// its own. `keys` and `args` are made again for the second send only.
    pub async fn run_script<R: FromValue>(
        &self,
        script: &LuaScript,
        keys: impl Fn() -> Vec<String>,
        args: impl Fn() -> Vec<Value>,
    ) -> Result<R, StoreError> {
        self.call(|client| async move {
            match client.evalsha(script.sha.as_str(), keys(), args()).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    client.eval(script.lua, keys(), args()).await
                }
                other => other,
            }
        })
        .await
    }

    /// Removes `member` from the sorted set `key`.
    pub async fn remove_member(&self, key: String, member: String) -> Result<(), StoreError> {
        self.call(|client| async move {
            client
                .custom::<i64, _>(fred::cmd!("ZREM"), vec![key, member])
                .await
        })
        .await?;
        Ok(())
    }

    /// Whether `key` exists, within the same deadline as a decision. The key is used as
    /// given: it belongs to another service, so `key_prefix` does not apply.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let found: i64 = self
            .call(|client| async move { client.exists(key).await })
            .await?;
        Ok(found > 0)
    }

    /// Runs `command` on this thread's connection, with the per-command options, within the
    /// deadline. A connection that is up is bounded by fred's own deadline on the command
    /// (`options.timeout`); only a connection still being made needs a timer of Usher's
    /// around the wait and the command together.
    ///
    /// fred's command futures are about 6 KB. Boxed here, they stop being part of the state
    /// of every future above them, up to each request's `request_filter`, which Pingora
    /// boxes (and copies whole) for every request, whether or not it calls Redis.
    async fn call<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(WithOptions<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, fred::error::Error>>,
    {
        Box::pin(async {
            let connected = self.connected_client();
            let up = connected.is_some();
            let run = async {
                let client = match connected {
                    Some(client) => client,
                    None => self.thread_client().await?,
                };
                command(client.with_options(&self.options))
                    .await
                    .map_err(store_error)
            };
            if up {
                return run.await;
            }
            tokio::time::timeout(self.settings.timeout, run)
                .await
                .map_err(|_| StoreError::Timeout)?
        })
        .await
    }

    /// This thread's connection, if it is made and up.
    fn connected_client(&self) -> Option<Client> {
        self.per_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&std::thread::current().id())
            .filter(|client| client.is_connected())
            .cloned()
    }

    /// Waits up to `limit` for the first connection, so a gateway that starts next to a
    /// healthy Redis does not count its first requests as store failures.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.client.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// Whether Redis answers a PING within `limit` (waiting for a connection in progress).
    pub async fn ping(&self, limit: Duration) -> Result<(), String> {
        let options = Options {
            timeout: Some(limit),
            max_attempts: Some(1),
            ..Default::default()
        };
        match tokio::time::timeout(
            limit,
            self.client.with_options(&options).ping::<String>(None),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let mut clients: Vec<Client> = self
            .per_thread
            .get_mut()
            .map(|map| map.drain().map(|(_, client)| client).collect())
            .unwrap_or_default();
        clients.push(self.client.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for client in clients {
                    let _ = client.quit().await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every future that awaits a Redis call holds this one; before `call` boxed fred's
    /// command futures it was over 6 KB, and so was each request's `request_filter`.
    #[tokio::test]
    async fn a_call_in_waiting_is_small() {
        let redis = Redis::connect(RedisSettings {
            url: "redis://127.0.0.1:1".into(),
            username: None,
            password: "unused".into(),
            timeout: Duration::from_millis(10),
            key_prefix: String::new(),
        })
        .expect("a client, connecting in the background");
        let waiting = redis.exists("key");
        let size = std::mem::size_of_val(&waiting);
        assert!(size < 1024, "a Redis call's future is {size} bytes");
    }
}
