//! What admission reads of a request: its head, the connection's peer and, where hardening
//! needs them, the head's bytes as received. Taken from a Pingora session, or built from
//! parts in tests, so the admission stages run without a socket.

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::net::SocketAddr;

pub struct Request<'a> {
    /// Mutable only so that client-sent identity headers can be stripped.
    pub head: &'a mut RequestHeader,
    /// The HTTP/1 head as received, when it carries `Transfer-Encoding` (hardening looks
    /// for a `Content-Length` line the parsed head may have merged away).
    pub raw_head: Option<Bytes>,
    /// The address of the connection's other end: the client, or a proxy in front of Usher.
    pub peer: Option<SocketAddr>,
    /// An HTTP/1.1 request to switch protocols (a WebSocket handshake).
    pub upgrade: bool,
}

impl<'a> Request<'a> {
    pub fn of(session: &'a mut Session) -> Request<'a> {
        let raw_head = session
            .req_header()
            .headers
            .contains_key(http::header::TRANSFER_ENCODING)
            .then(|| {
                session
                    .as_downstream()
                    .as_http1()
                    .map(|h1| h1.get_headers_raw_bytes())
            })
            .flatten();
        let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        let upgrade = session.is_upgrade_req();
        Request {
            head: session.req_header_mut(),
            raw_head,
            peer,
            upgrade,
        }
    }

    /// The host the request is for: the `Host` header, or the authority of its target
    /// (HTTP/2's `:authority`).
    pub fn host(&self) -> Option<&str> {
        self.head
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.head.uri.host())
    }
}
