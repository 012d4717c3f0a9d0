//! The TLS ClientHello within the head deadline. Pingora's listener runs each TLS handshake
//! before any application code, with a fixed 60 s limit, so a connection that sends nothing
//! to a TLS listener, or half a ClientHello, held a descriptor and its buffers for a minute.
//! The one hook before the handshake is the pre-TLS callback: it waits (by peeking, so the
//! handshake still reads every byte) for the first TLS record, the ClientHello, to be in
//! whole within `limits.request_head_timeout`, and drops the connection otherwise. The rest
//! of the handshake depends on the server's answers and keeps Pingora's limit.

use super::FIRST_HEAD_TIMEOUT;
use crate::security::events::Severity;
use crate::snapshot::Live;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, Peek};
use pingora::{Error, ErrorType};
use std::sync::Arc;
use tokio::time::Instant;

/// A TLS record header: type, version (2 bytes), length (2 bytes).
const RECORD_HEADER: usize = 5;
/// The handshake record type.
const HANDSHAKE: u8 = 0x16;
/// The largest TLS plaintext record (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

pub struct ClientHelloDeadline {
    live: Arc<Live>,
}

impl ClientHelloDeadline {
    pub fn new(live: Arc<Live>) -> Self {
        ClientHelloDeadline { live }
    }
}

#[async_trait]
impl PreTlsProcess for ClientHelloDeadline {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let limit = self
            .live
            .current()
            .map_or(FIRST_HEAD_TIMEOUT, |s| s.config.limits.request_head_timeout);
        let deadline = Instant::now() + limit;
        let mut header = [0u8; RECORD_HEADER];
        peek_by(deadline, stream, &mut header).await?;
        if header[0] != HANDSHAKE {
            return Ok(()); // not TLS: the handshake refuses it at once
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]])).min(MAX_RECORD);
        let mut record = vec![0u8; RECORD_HEADER + length];
        peek_by(deadline, stream, &mut record).await
    }
}

/// Peeks `buf.len()` bytes, or fails at `deadline` with a security event.
async fn peek_by(deadline: Instant, stream: &mut L4Stream, buf: &mut [u8]) -> pingora::Result<()> {
    match tokio::time::timeout_at(deadline, stream.try_peek(buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::because(
            ErrorType::ReadError,
            "before the TLS handshake",
            e,
        )),
        Err(_) => {
            let request_id = crate::telemetry::correlation::request_id(&http::HeaderMap::new());
            super::connection_event(
                "request_head_timeout",
                Severity::Low,
                stream.get_socket_digest(),
                &request_id,
            );
            Error::e_explain(
                ErrorType::ReadTimedout,
                "no whole ClientHello within limits.request_head_timeout",
            )
        }
    }
}
