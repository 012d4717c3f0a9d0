//! Members of the sorted sets in which Redis logs a shared window's requests and a budget's
//! spends: `<prefix>-<sequence>` in hexadecimal, the prefix drawn once per process so that
//! replicas never collide, the sequence counted per request. Written without `format!`:
//! one is made on every decision.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Members {
    /// The process's prefix with its `-`, encoded once.
    prefix: String,
    next: AtomicU64,
}

impl Default for Members {
    fn default() -> Self {
        let mut prefix = String::with_capacity(17);
        push_hex(&mut prefix, rand::random());
        prefix.push('-');
        Members {
            prefix,
            next: AtomicU64::new(0),
        }
    }
}

impl Members {
    /// A sequence number not handed out before in this process.
    pub fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The member `sequence` names.
    pub fn name(&self, sequence: u64) -> String {
        let mut member = String::with_capacity(self.prefix.len() + 16);
        member.push_str(&self.prefix);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn names_are_the_prefix_and_the_sequence() {
        let members = Members::default();
        let (first, second) = (members.next(), members.next());
        assert_eq!(second, first + 1);
        let name = members.name(second);
        assert_eq!(name, format!("{}{second:x}", members.prefix));
        assert!(members.prefix.ends_with('-'));
    }
}
