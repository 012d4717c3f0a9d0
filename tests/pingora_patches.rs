//! What Usher relies on from its patch to `pingora-http` (patches/README.md): headers
//! inserted by a static name, after room was reserved for them, come out on the wire
//! exactly as `insert_header` would have written them, with both of Pingora's header maps
//! (values, and names in their case) in step. Pingora walks the two together when it
//! writes a head and panics if they disagree.

use http::header::{CONTENT_TYPE, HOST};
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static STANDARD: HeaderName = CONTENT_TYPE;

fn wire(header: &RequestHeader) -> String {
    let mut out = Vec::new();
    header.header_to_h1_wire(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn static_inserts_write_what_insert_header_writes() {
    let build = || {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        request.append_header("HoSt", "example.test").unwrap();
        request
            .append_header("X-Request-ID", "from-the-client")
            .unwrap();
        request
    };
    let mut by_text = build();
    by_text.insert_header("x-request-id", "r1").unwrap();
    by_text
        .insert_header(CONTENT_TYPE, "application/json")
        .unwrap();

    let mut by_static = build();
    by_static.reserve(2).unwrap();
    by_static.insert_header_static(&X_REQUEST_ID, "r1").unwrap();
    by_static
        .insert_header_static(&STANDARD, "application/json")
        .unwrap();

    assert_eq!(wire(&by_static), wire(&by_text));
    assert_eq!(
        wire(&by_static),
        "HoSt: example.test\r\nx-request-id: r1\r\nContent-Type: application/json\r\n"
    );
    assert_eq!(by_static.headers.get(HOST).unwrap(), "example.test");
    assert_eq!(by_static.headers.get_all(&X_REQUEST_ID).iter().count(), 1);
}

#[test]
fn reserved_room_takes_the_inserts_without_growing() {
    let mut response = ResponseHeader::build(200, Some(1)).unwrap();
    response.append_header("Server", "upstream").unwrap();
    let names: Vec<&'static HeaderName> = SEVEN_NAMES.iter().collect();
    response.reserve(names.len()).unwrap();
    let capacity = response.headers.capacity();
    for name in &names {
        response.insert_header_static(name, "1").unwrap();
    }
    assert_eq!(response.headers.capacity(), capacity);
    assert_eq!(response.headers.len(), names.len() + 1);
    let mut out = Vec::new();
    response.header_to_h1_wire(&mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("Server: upstream\r\n"), "{out}");
    for name in names {
        assert!(
            out.contains(&format!("\r\n{name}: 1\r\n")),
            "{name} in {out}"
        );
    }
}

#[test]
fn later_changes_keep_the_maps_in_step() {
    // What decorate does after its static inserts: a route's CORS headers appended, an
    // upstream's header removed; in the name-by-text version and the static one alike.
    let run = |by_static: bool| {
        let mut response = ResponseHeader::build(200, None).unwrap();
        response
            .append_header("X-Request-Id", "upstream's")
            .unwrap();
        response.append_header("Vary", "Origin").unwrap();
        let set_id = |response: &mut ResponseHeader, id: &'static str| match by_static {
            true => response.insert_header_static(&X_REQUEST_ID, id).unwrap(),
            false => response.insert_header("x-request-id", id).unwrap(),
        };
        set_id(&mut response, "r1");
        response.append_header("vary", "Accept").unwrap();
        response.remove_header("vary");
        set_id(&mut response, "r2");
        response
            .append_header("Access-Control-Allow-Origin", "https://app.example")
            .unwrap();
        let mut out = Vec::new();
        response.header_to_h1_wire(&mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(run(true), run(false));
    assert_eq!(
        run(true),
        "x-request-id: r2\r\nAccess-Control-Allow-Origin: https://app.example\r\n"
    );
}

static SEVEN_NAMES: [HeaderName; 7] = [
    HeaderName::from_static("x-one"),
    HeaderName::from_static("x-two"),
    HeaderName::from_static("x-three"),
    HeaderName::from_static("x-four"),
    HeaderName::from_static("x-five"),
    HeaderName::from_static("x-six"),
    HeaderName::from_static("x-seven"),
];
