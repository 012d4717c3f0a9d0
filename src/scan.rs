//! Checks that look at every byte of a request's values (a header value, a credential, a
//! log field), written so that the compiler vectorizes them: a few hundred bytes cost tens
//! of instructions rather than a few per byte, which a loop with an early exit costs.

/// Whether any byte of `bytes` is one `hit` picks. Every byte is looked at; `hit` should be
/// a few comparisons.
pub fn any(bytes: &[u8], hit: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(0u8, |found, &b| found | u8::from(hit(b))) != 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_a_hit_anywhere_and_nothing_else() {
        let value = [b'a'; 300];
        assert!(!super::any(&value, |b| b == b'z'));
        assert!(!super::any(&[], |_| true));
        for at in [0, 150, 299] {
            let mut value = value;
            value[at] = b'z';
            assert!(super::any(&value, |b| b == b'z'), "at {at}");
        }
    }
}
