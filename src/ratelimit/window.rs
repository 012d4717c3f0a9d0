//! The sliding-window log: the algorithm both stores run (the in-process store here, Redis in
//! `sliding_window.lua`, line for line the same).
//!
//! A bucket remembers when each admitted request arrived. A request is admitted while fewer
//! than `limit` admitted requests lie in the last `window`, so no interval of that length
//! ever holds more than `limit` admissions: exact at every edge, unlike fixed windows (which
//! allow twice the limit across a boundary) or GCRA (which allows a burst of `limit` and
//! then a steady trickle, up to about twice the limit in one window). Refused requests are
//! not logged, so a caller that keeps retrying recovers as soon as its old requests age out;
//! they are counted separately, for blocking and the bot signal.
//!
//! Times are microseconds on the store's own clock; only differences matter.

use std::collections::VecDeque;

/// What a store answers for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests the caller may still make in the current window (after this one).
    pub remaining: u32,
    /// Admitted: until the oldest counted request leaves the window. Refused: until a
    /// request would be admitted (the end of a block, if blocked).
    pub wait_us: u64,
    /// Refusals of this caller in the current refusal window, this one included.
    pub rejections: u32,
    pub block: Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    None,
    /// The caller was already blocked.
    Active,
    /// This refusal started a block.
    Started,
}

/// One caller's state under one policy.
#[derive(Debug, Default)]
pub struct Bucket {
    /// Arrival times of admitted requests, oldest first.
    admitted: VecDeque<u64>,
    rejections: u32,
    rejections_until: u64,
    blocked_until: u64,
}

/// What is being asked: `limit` requests per `window_us`, and optionally a block of
/// `block_us` after `block_after` refusals within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub limit: u32,
    pub window_us: u64,
    pub block_after: u32,
    pub block_us: u64,
}

impl Bucket {
    pub fn decide(&mut self, now: u64, rule: &Rule) -> Decision {
        // As in sliding_window.lua: a rule without a block ignores one begun earlier.
        if rule.block_after > 0 && self.blocked_until > now {
            return self.refuse(now, rule, self.blocked_until - now, Block::Active);
        }
        while self
            .admitted
            .front()
            .is_some_and(|&t| t + rule.window_us <= now)
        {
            self.admitted.pop_front();
        }
        let count = self.admitted.len();
        let limit = rule.limit as usize;
        if count < limit {
            self.admitted.push_back(now);
            let oldest = self.admitted[0];
            return Decision {
                allowed: true,
                remaining: (limit - count - 1) as u32,
                wait_us: oldest + rule.window_us - now,
                rejections: 0,
                block: Block::None,
            };
        }
        // Admission resumes once enough counted requests have aged out to leave room for one.
        let freeing = self.admitted[count - limit];
        let retry = freeing + rule.window_us - now;
        self.refuse(now, rule, retry, Block::None)
    }

    fn refuse(&mut self, now: u64, rule: &Rule, retry: u64, block: Block) -> Decision {
        if self.rejections_until <= now {
            self.rejections = 0;
            self.rejections_until = now + rule.window_us;
        }
        self.rejections += 1;
        if block == Block::None && rule.block_after > 0 && self.rejections >= rule.block_after {
            self.blocked_until = now + rule.block_us;
            return Decision {
                allowed: false,
                remaining: 0,
                wait_us: rule.block_us,
                rejections: self.rejections,
                block: Block::Started,
            };
        }
        Decision {
            allowed: false,
            remaining: 0,
            wait_us: retry,
            rejections: self.rejections,
            block,
        }
    }

    /// Forgets the request admitted at `at` (another policy refused it).
    pub fn give_back(&mut self, at: u64) {
        if let Some(index) = self.admitted.iter().rposition(|&t| t == at) {
            self.admitted.remove(index);
        }
    }

    /// Whether the bucket holds nothing that still matters at `now` under `window_us`.
    pub fn is_idle(&self, now: u64, window_us: u64) -> bool {
        self.blocked_until <= now
            && self.rejections_until <= now
            && self.admitted.back().is_none_or(|&t| t + window_us <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_request_frees_its_place() {
        let rule = rule(2, 60);
        let mut bucket = Bucket::default();
        assert!(bucket.decide(SECOND, &rule).allowed);
        assert!(bucket.decide(2 * SECOND, &rule).allowed);
        bucket.give_back(2 * SECOND);
        let again = bucket.decide(3 * SECOND, &rule);
        assert!(again.allowed);
        assert_eq!(again.remaining, 0);
        assert!(!bucket.decide(4 * SECOND, &rule).allowed);
    }

    const SECOND: u64 = 1_000_000;

    fn rule(limit: u32, window_s: u64) -> Rule {
        Rule {
            limit,
            window_us: window_s * SECOND,
            block_after: 0,
            block_us: 0,
        }
    }

    #[test]
    fn admits_exactly_the_limit_in_any_window() {
        let rule = rule(5, 60);
        let mut bucket = Bucket::default();
        let start = 1_000 * SECOND;
        for i in 0..5 {
            let d = bucket.decide(start + i * SECOND, &rule);
            assert!(d.allowed);
            assert_eq!(d.remaining, 4 - i as u32);
        }
        // One microsecond before the first request leaves the window: still full.
        let d = bucket.decide(start + 60 * SECOND - 1, &rule);
        assert!(!d.allowed);
        assert_eq!(d.wait_us, 1);
        // At the edge, one place frees, and only one.
        assert!(bucket.decide(start + 60 * SECOND, &rule).allowed);
        assert!(!bucket.decide(start + 60 * SECOND, &rule).allowed);
        assert!(bucket.decide(start + 61 * SECOND, &rule).allowed);
    }

    #[test]
    fn reset_counts_down_from_the_oldest_request() {
        let rule = rule(3, 10);
        let mut bucket = Bucket::default();
        let first = bucket.decide(100 * SECOND, &rule);
        assert_eq!(first.wait_us, 10 * SECOND);
        let second = bucket.decide(104 * SECOND, &rule);
        assert_eq!((second.remaining, second.wait_us), (1, 6 * SECOND));
    }

    #[test]
    fn a_lower_limit_waits_for_enough_requests_to_age_out() {
        let mut bucket = Bucket::default();
        for t in 0..4 {
            assert!(bucket.decide((10 + t) * SECOND, &rule(4, 60)).allowed);
        }
        // The caller's tier dropped to a limit of 2: three of the four must age out before
        // one more fits.
        let d = bucket.decide(20 * SECOND, &rule(2, 60));
        assert!(!d.allowed);
        assert_eq!(d.wait_us, (12 + 60 - 20) * SECOND);
    }

    #[test]
    fn repeated_refusals_start_a_block_that_outlives_the_window() {
        let rule = Rule {
            block_after: 3,
            block_us: 300 * SECOND,
            ..rule(1, 60)
        };
        let mut bucket = Bucket::default();
        assert!(bucket.decide(0, &rule).allowed);
        assert_eq!(bucket.decide(SECOND, &rule).block, Block::None);
        assert_eq!(bucket.decide(2 * SECOND, &rule).block, Block::None);
        let third = bucket.decide(3 * SECOND, &rule);
        assert_eq!((third.block, third.wait_us), (Block::Started, 300 * SECOND));
        let later = bucket.decide(100 * SECOND, &rule);
        assert_eq!(later.block, Block::Active);
        assert_eq!(later.wait_us, 203 * SECOND);
        assert!(bucket.decide(304 * SECOND, &rule).allowed);
    }

    #[test]
    fn a_rule_without_a_block_ignores_one_begun_earlier() {
        let blocking = Rule {
            block_after: 1,
            block_us: 300 * SECOND,
            ..rule(1, 60)
        };
        let mut bucket = Bucket::default();
        assert!(bucket.decide(0, &blocking).allowed);
        assert_eq!(bucket.decide(SECOND, &blocking).block, Block::Started);
        assert_eq!(bucket.decide(2 * SECOND, &blocking).block, Block::Active);
        // The configuration dropped the block and raised the limit: only the limit holds.
        let d = bucket.decide(3 * SECOND, &rule(3, 60));
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn refusals_are_counted_per_window() {
        let rule = rule(1, 10);
        let mut bucket = Bucket::default();
        bucket.decide(0, &rule);
        assert_eq!(bucket.decide(1, &rule).rejections, 1);
        assert_eq!(bucket.decide(2, &rule).rejections, 2);
        bucket.decide(10 * SECOND + 5, &rule);
        assert_eq!(bucket.decide(10 * SECOND + 6, &rule).rejections, 1);
    }

    #[test]
    fn idle_once_everything_aged_out() {
        let rule = rule(2, 10);
        let mut bucket = Bucket::default();
        bucket.decide(0, &rule);
        assert!(!bucket.is_idle(5 * SECOND, rule.window_us));
        assert!(bucket.is_idle(10 * SECOND, rule.window_us));
    }
}
