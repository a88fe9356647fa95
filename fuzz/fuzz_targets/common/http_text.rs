//! Requests written as text, so seeds are readable HTTP requests and a
//! dictionary of header names and JSON fields helps: requests separated by
//! a line `===`, each
//!
//! ```text
//! METHOD TARGET
//! Name: value
//!
//! body
//! ```
//!
//! A request hyper's client refuses to build (bad method, target or header)
//! is skipped; the framing headers are dropped (hyper's client sets the
//! length from the body), so a request never waits for bytes that never come.

#![allow(dead_code)]

use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;

/// Headers the client must own (framing, connection management).
const FRAMING: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "keep-alive",
];

/// The requests of an input (at most `max`).
pub fn requests(data: &[u8], max: usize) -> Vec<Request<Full<Bytes>>> {
    split(data, b"\n===\n")
        .into_iter()
        .take(max)
        .filter_map(request)
        .collect()
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = find(rest, sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request, if hyper can send it.
pub fn request(text: &[u8]) -> Option<Request<Full<Bytes>>> {
    let (head, body) = match find(text, b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let target = if target.is_empty() { &b"/"[..] } else { target };
    let mut b = Request::builder()
        .method(hyper::Method::from_bytes(method).ok()?)
        .uri(hyper::Uri::try_from(target).ok()?);
    for line in lines {
        let Some(i) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = hyper::header::HeaderName::from_bytes(&line[..i]).ok()?;
        if FRAMING.contains(&name.as_str()) {
            continue;
        }
        let mut value = &line[i + 1..];
        if value.first() == Some(&b' ') {
            value = &value[1..];
        }
        let value = hyper::header::HeaderValue::from_bytes(value).ok()?;
        b = b.header(name, value);
    }
    b.body(Full::new(Bytes::copy_from_slice(body))).ok()
}
