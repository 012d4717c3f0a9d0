//! SHA-256 digests that name things (records in Redis, approvals, delivery scopes, tokens
//! in the logs, the configuration's version), as lower-case hex: of parts as they are, or of
//! parts each preceded by its length, so that no part can run into the next.

use sha2::{Digest, Sha256};

/// The first `bytes` bytes of `digest`, as lower-case hex.
pub fn hex(digest: &[u8], bytes: usize) -> String {
    digest
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of `parts` one after the other: its first `bytes` bytes, as hex.
pub fn sha256_hex(parts: &[&[u8]], bytes: usize) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    hex(&digest.finalize(), bytes)
}

/// The SHA-256 of `parts`, each preceded by its length (8 bytes, big-endian): its first
/// `bytes` bytes, as hex.
pub fn sha256_prefixed_hex(parts: &[&[u8]], bytes: usize) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    hex(&digest.finalize(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_digested_as_they_come_or_length_prefixed() {
        // SHA-256 of "abc" (FIPS 180-2 appendix B.1).
        assert_eq!(sha256_hex(&[b"a", b"bc"], 4), "ba7816bf");
        assert_eq!(hex(&[0, 255, 16], 2), "00ff");
        // With lengths, ("a", "bc") and ("ab", "c") differ.
        assert_ne!(
            sha256_prefixed_hex(&[b"a", b"bc"], 16),
            sha256_prefixed_hex(&[b"ab", b"c"], 16)
        );
    }
}
