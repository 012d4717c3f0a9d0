//! The sliding window on the shared Redis: one atomic Lua script per decision
//! (`sliding_window.lua`, the same steps as `window.rs`), in one round trip.
//!
//! The script reads Redis's clock, so replicas with skewed clocks still share one window.
//! Its three keys carry one hash tag and expire by themselves (the log after a window, the
//! refusal count after a window, the block after its duration).

use super::member::Members;
use super::window::{Block, Decision, Rule};
use crate::store::redis::{LuaScript, Redis, StoreError};
use fred::types::Value;

/// The window's script and what makes each logged request's member unique across replicas
/// and requests.
pub struct SharedWindow {
    script: LuaScript,
    members: Members,
}

impl Default for SharedWindow {
    fn default() -> Self {
        SharedWindow {
            script: LuaScript::new(include_str!("sliding_window.lua")),
            members: Members::default(),
        }
    }
}

impl SharedWindow {
    /// One decision, in one round trip (two only right after Redis lost its script cache),
    /// and the number of the member it logged (for [`SharedWindow::give_back`]).
    pub async fn decide(
        &self,
        redis: &Redis,
        bucket: &str,
        rule: &Rule,
    ) -> Result<(Decision, u64), StoreError> {
        let tag = log_key(redis, bucket);
        let sequence = self.members.next();
        let member = self.members.name(sequence);
        let keys = || vec![tag.clone(), [&tag, ":r"].concat(), [&tag, ":b"].concat()];
        let args = || {
            vec![
                Value::from(i64::from(rule.limit)),
                Value::from(rule.window_us as i64),
                Value::from(member.as_str()),
                Value::from(i64::from(rule.block_after)),
                Value::from(rule.block_us as i64),
            ]
        };
        let reply: Vec<i64> = redis.run_script(&self.script, keys, args).await?;
        decision(&reply)
            .map(|decision| (decision, sequence))
            .ok_or_else(|| StoreError::Failed(format!("unexpected reply {reply:?}")))
    }

    /// Removes the request `decide` logged as member `sequence` from `bucket`'s log.
    pub async fn give_back(
        &self,
        redis: &Redis,
        bucket: &str,
        sequence: u64,
    ) -> Result<(), StoreError> {
        redis
            .remove_member(log_key(redis, bucket), self.members.name(sequence))
            .await
    }
}

fn log_key(redis: &Redis, bucket: &str) -> String {
    let prefix = &redis.settings().key_prefix;
    [prefix.as_str(), "{", bucket, "}"].concat()
}

fn decision(reply: &[i64]) -> Option<Decision> {
    let &[allowed, remaining, wait_us, rejections, block] = reply else {
        return None;
    };
    Some(Decision {
        allowed: allowed == 1,
        remaining: remaining.clamp(0, u32::MAX as i64) as u32,
        wait_us: wait_us.max(0) as u64,
        rejections: rejections.clamp(0, u32::MAX as i64) as u32,
        block: match block {
            1 => Block::Active,
            2 => Block::Started,
            _ => Block::None,
        },
    })
}
