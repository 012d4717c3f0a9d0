//! The client's address: the socket peer, unless the peer is a trusted proxy.
//!
//! Behind trusted proxies (say, the cloud load balancer), the client is the right-most
//! address in `X-Forwarded-For` that is not itself a trusted proxy: everything left of it
//! was written by the client and proves nothing. An untrusted peer's `X-Forwarded-For` is
//! ignored entirely. Usher then writes `X-Forwarded-For` and `X-Forwarded-Proto` itself.

use ipnet::IpNet;
use std::net::IpAddr;

/// Read from the client's request when its peer is trusted, and written on every forwarded
/// one. A static, so Pingora inserts it without parsing or copying it (patches/README.md).
pub static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Whether `ip` is one of `identity.trusted_proxies`.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `forwarded_for` is every `X-Forwarded-For` header value, in order.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Ok(ip) if is_trusted(ip, trusted) => client = ip,
            Ok(ip) => return ip,
            // Unparseable: nothing further left can be believed.
            Err(_) => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Result<IpAddr, std::net::AddrParseError> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .or_else(|_| hop.trim_start_matches('[').trim_end_matches(']').parse())
}

/// The `X-Forwarded-For` to send upstream: the chain received from a trusted peer with the
/// peer appended, or just the peer.
pub fn forwarded_for<'a>(
    peer: IpAddr,
    received: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> String {
    if is_trusted(peer, trusted) {
        let chain: Vec<&str> = received.map(str::trim).filter(|v| !v.is_empty()).collect();
        if !chain.is_empty() {
            return format!("{}, {peer}", chain.join(", "));
        }
    }
    text(peer)
}

/// An address as text, as `Display` writes it (see [`write`]).
pub fn text(ip: IpAddr) -> String {
    let mut text = Vec::with_capacity(15);
    write(&mut text, ip);
    String::from_utf8(text).expect("an address is ASCII")
}

/// Appends an address as `Display` writes it. IPv4 is written digit by digit into a buffer
/// appended once: the formatting machinery cost more than a thousand instructions an
/// address, and an append per octet about 400 (a request writes up to four:
/// `X-Original-IP`, `X-Forwarded-For`, the access log's client and peer).
pub fn write(out: &mut Vec<u8>, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        use std::io::Write as _;
        let _ = write!(out, "{ip}");
        return;
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    out.extend_from_slice(&text[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn every_octet_in_every_place_is_written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [1, 22, 203, 4];
                octets[place] = octet;
                let ip = IpAddr::from(octets);
                let mut out = b"x".to_vec();
                write(&mut out, ip);
                assert_eq!(out, format!("x{ip}").into_bytes());
            }
        }
    }

    #[test]
    fn text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "203.0.113.255",
            "10.20.3.4",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(text(ip), ip.to_string());
        }
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let xff = ["1.2.3.4"];
        assert_eq!(
            client_address(peer, xff.into_iter(), &nets(&["10.0.0.0/8"])),
            peer
        );
        assert_eq!(
            forwarded_for(peer, xff.into_iter(), &nets(&["10.0.0.0/8"])),
            "203.0.113.9"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let cases = [
            (vec!["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            (vec!["6.6.6.6", "198.51.100.7, 10.1.1.1"], "198.51.100.7"),
            (vec!["garbage, 198.51.100.7"], "198.51.100.7"),
            (vec!["198.51.100.7, garbage"], "10.0.0.5"),
            (vec!["10.9.9.9"], "10.9.9.9"),
            (vec![], "10.0.0.5"),
            (vec!["198.51.100.7:5678"], "198.51.100.7"),
            (vec!["[2001:db8::7]:443"], "2001:db8::7"),
            (vec!["[2001:db8::8]"], "2001:db8::8"),
        ];
        for (headers, expected) in cases {
            let got = client_address(peer, headers.iter().copied(), &trusted);
            assert_eq!(got.to_string(), expected, "{headers:?}");
        }
        assert_eq!(
            forwarded_for(peer, ["198.51.100.7"].into_iter(), &trusted),
            "198.51.100.7, 10.0.0.5"
        );
    }
}
