//! Where an HTTP/2 connection's first request head ends: after the 24-byte connection
//! preface, at the end of the first header block (a HEADERS frame, or the CONTINUATION
//! frame, that carries END_HEADERS, payload included). Until then the connection is held
//! to the head deadline, so a client that sends the preface and then nothing, or HEADERS
//! without END_HEADERS, is closed like an HTTP/1 client that never finishes its head.
//! Frames are followed by their 9-byte headers only; nothing is decoded.

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
pub const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

#[derive(Debug, Default)]
pub struct FirstHeaders {
    /// Preface bytes seen so far.
    preface: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    /// The current frame ends the first header block.
    ends_block: bool,
    done: bool,
}

impl FirstHeaders {
    /// Follows `bytes`; true once the first header block is complete.
    pub fn read(&mut self, mut bytes: &[u8]) -> bool {
        while !self.done && !bytes.is_empty() {
            if self.preface < PREFACE_LEN {
                let n = (PREFACE_LEN - self.preface).min(bytes.len());
                self.preface += n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 || self.header_len == FRAME_HEADER_LEN {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                if self.payload_left == 0 {
                    self.header_len = 0;
                    self.done = self.ends_block;
                }
            } else {
                let n = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == FRAME_HEADER_LEN {
                    let h = self.header;
                    self.payload_left =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    self.ends_block =
                        matches!(h[3], HEADERS | CONTINUATION) && h[4] & END_HEADERS != 0;
                    if self.payload_left == 0 {
                        self.header_len = 0;
                        self.done = self.ends_block;
                    }
                }
            }
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    #[test]
    fn the_first_header_block_ends_the_head_in_any_split() {
        let settings = frame(0x4, 0, 6);
        let headers = frame(HEADERS, END_HEADERS | 0x1, 20);
        let stream: Vec<u8> = [PREFACE, &settings, &frame(0x4, 0x1, 0), &headers].concat();
        for step in [1, 2, 7, 9, 24, 1000] {
            let mut watch = FirstHeaders::default();
            let chunks: Vec<&[u8]> = stream.chunks(step).collect();
            let (last, rest) = chunks.split_last().unwrap();
            for chunk in rest {
                assert!(!watch.read(chunk), "step {step}: done too early");
            }
            assert!(watch.read(last), "step {step}");
        }
    }

    #[test]
    fn a_preface_alone_or_headers_without_end_headers_do_not_end_it() {
        let mut watch = FirstHeaders::default();
        assert!(!watch.read(PREFACE));
        assert!(!watch.read(&frame(0x4, 0, 0)));
        assert!(!watch.read(&frame(HEADERS, 0x1, 30)), "no END_HEADERS");
        let mut almost = frame(CONTINUATION, END_HEADERS, 10);
        almost.pop();
        assert!(!watch.read(&almost), "its payload is not all in");
        assert!(watch.read(&[0]));
    }
}
