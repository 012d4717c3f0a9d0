//! The sliding window on the shared Redis: one atomic Lua script per decision
//! (`sliding_window.lua`, the same steps as `window.rs`), in one round trip.
//!
//! The script reads Redis's clock, so replicas with skewed clocks still share one window.
//! Its three keys carry one hash tag and expire by themselves (the log after a window, the
//! refusal count after a window, the block after its duration).

use super::window::{Block, Decision, Rule};
use crate::store::redis::{LuaScript, Redis, StoreError};
use fred::types::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// The window's script and what makes each logged request's member unique across replicas
/// and requests.
pub struct SharedWindow {
    script: LuaScript,
    member_prefix: u64,
    members: AtomicU64,
}

impl Default for SharedWindow {
    fn default() -> Self {
        SharedWindow {
            script: LuaScript::new(include_str!("sliding_window.lua")),
            member_prefix: rand::random(),
            members: AtomicU64::new(0),
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
        let sequence = self.members.fetch_add(1, Ordering::Relaxed);
        let member = self.member(sequence);
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
            .remove_member(log_key(redis, bucket), self.member(sequence))
            .await
    }

    /// `<prefix>-<sequence>` in hexadecimal. Keys and members are made on every decision,
    /// so without `format!`'s machinery.
    fn member(&self, sequence: u64) -> String {
        let mut member = String::with_capacity(33);
        push_hex(&mut member, self.member_prefix);
        member.push('-');
        push_hex(&mut member, sequence);
        member
    }
}

/// `n` in lower-case hexadecimal, without leading zeros, as `{:x}` writes it.
fn push_hex(out: &mut String, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let digit = (n >> (shift * 4)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[digit as usize]));
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

#[cfg(test)]
mod tests {
    use super::push_hex;

    #[test]
    fn hex_is_what_format_writes() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            0xdead_beef,
            u64::MAX >> 4,
            u64::MAX,
        ] {
            let mut out = String::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}"));
        }
    }
}
