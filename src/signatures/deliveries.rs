//! Each webhook delivery is forwarded once: a verified delivery is recorded (by the id its
//! scheme gives it, per route) before it goes upstream, for as long as its signature could
//! be replayed. A repeat is refused while the first is in flight or once the service has
//! answered it; if the service failed (5xx) or never got it, the record is dropped, so the
//! provider's retry goes through. Records live in Redis for every replica
//! (`begin_delivery.lua`, `end_delivery.lua`), in this process without Redis.

use crate::store::redis::{LuaScript, StoreError};
use crate::store::Place;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Records kept in process at once; past it, expired ones go, then new deliveries are
/// refused (503) rather than forgotten.
const MAX_LOCAL: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    Fresh,
    /// The same delivery is being forwarded now.
    InFlight,
    /// The same delivery was forwarded and answered.
    Seen,
    Unavailable,
}

pub struct Deliveries {
    begin: LuaScript,
    end: LuaScript,
    local: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            begin: LuaScript::new(include_str!("begin_delivery.lua")),
            end: LuaScript::new(include_str!("end_delivery.lua")),
            local: Mutex::default(),
        }
    }
}

/// The record's name: the route and the delivery's id, hashed (ids are the sender's).
pub fn record_name(route: &str, delivery: &str) -> String {
    let name = format!("{}:{route}:{delivery}", route.len());
    crate::digest::sha256_hex(&[name.as_bytes()], 16)
}

impl Deliveries {
    pub async fn begin(&self, place: Place<'_>, name: &str, keep: Duration) -> Begun {
        match place {
            Place::Missing => Begun::Unavailable,
            Place::Local => {
                let now = Instant::now();
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(&(done, _)) = local.get(name).filter(|(_, until)| *until > now) {
                    return if done { Begun::Seen } else { Begun::InFlight };
                }
                if local.len() >= MAX_LOCAL {
                    local.retain(|_, (_, until)| *until > now);
                    if local.len() >= MAX_LOCAL {
                        return Begun::Unavailable;
                    }
                }
                local.insert(name.to_string(), (false, now + keep));
                Begun::Fresh
            }
            Place::Shared(store, spec) => {
                let key = format!("{}webhook:{{{name}}}", spec.key_prefix);
                let reply: Option<Result<String, StoreError>> = store
                    .guarded(spec, |redis| {
                        redis.run_script(
                            &self.begin,
                            || vec![key.clone()],
                            || vec![Value::from(keep.as_millis() as i64)],
                        )
                    })
                    .await;
                match reply.as_ref().map(|r| r.as_deref()) {
                    Some(Ok("fresh")) => Begun::Fresh,
                    Some(Ok("pending")) => Begun::InFlight,
                    Some(Ok("done")) => Begun::Seen,
                    _ => Begun::Unavailable,
                }
            }
        }
    }

    /// `answered`: the service answered (below 500), so a repeat is a replay; otherwise the
    /// record goes and the provider's retry may pass.
    pub async fn end(&self, place: Place<'_>, name: &str, answered: bool) {
        match place {
            Place::Missing => {}
            Place::Local => {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                if answered {
                    if let Some(record) = local.get_mut(name) {
                        record.0 = true;
                    }
                } else {
                    local.remove(name);
                }
            }
            Place::Shared(store, spec) => {
                let key = format!("{}webhook:{{{name}}}", spec.key_prefix);
                let how = if answered { "done" } else { "release" };
                let _: Result<i64, _> = store
                    .unguarded()
                    .run_script(&self.end, || vec![key.clone()], || vec![Value::from(how)])
                    .await;
            }
        }
    }
}
