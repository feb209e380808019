//! HTTP/1.1 on the wire to the upstreams: the request head the router
//! writes, and the strict reading of the response head and of the body's
//! framing (RFC 9112).
//!
//! Strict on purpose: a response whose length is ambiguous (both
//! `Transfer-Encoding` and `Content-Length`, differing or malformed
//! lengths, malformed chunk sizes) is refused with a 502 rather than
//! guessed at, the guess being what response-splitting attacks exploit.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Version};

/// The largest response head accepted; nginx's default buffers hold 4-8 KiB.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// The most response headers accepted.
const MAX_HEADERS: usize = 128;

/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Why an upstream's response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("an unparsable response head ({0})")]
    Head(&'static str),
    #[error("a response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("both Transfer-Encoding and Content-Length")]
    AmbiguousLength,
    #[error("an invalid Content-Length")]
    InvalidLength,
    #[error("an invalid chunk")]
    InvalidChunk,
    #[error("a protocol upgrade, which the router does not proxy")]
    Upgrade,
    #[error("a transfer coding other than chunked, which the router cannot forward intact")]
    UnsupportedTransferCoding,
}

/// How a request's body goes to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    None,
    Length(u64),
    Chunked,
}

/// Writes the request line and headers. `headers` must already be the
/// ones to forward; the body's framing header is written here, so any
/// `Content-Length` the client sent is left out when the body is re-framed.
pub(crate) fn encode_head(parts: &Parts, body: RequestBody, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if body != RequestBody::None && name == header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        RequestBody::None => {}
        RequestBody::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(length.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
}

/// Parses a response head from the front of `buffer`, consuming it, or
/// `None` when more bytes are needed.
pub(crate) fn parse_head(buffer: &mut BytesMut) -> Result<Option<Head>, Malformed> {
    // Uninitialised slots: zeroing 128 of them (4 KiB) per response would
    // cost more than parsing a short head.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut slots,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
            return Err(Malformed::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(Malformed::Head(httparse_reason(error))),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Malformed::Head("status"))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Header values are slices of one shared copy of the head, as in hyper,
    // rather than one allocation each.
    let head = Bytes::copy_from_slice(&buffer[..length]);
    let start = buffer.as_ptr() as usize;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for parsed in response.headers.iter() {
        let name = HeaderName::from_bytes(parsed.name.as_bytes())
            .map_err(|_| Malformed::Head("header name"))?;
        let offset = parsed.value.as_ptr() as usize - start;
        let value = HeaderValue::from_maybe_shared(head.slice(offset..offset + parsed.value.len()))
            .map_err(|_| Malformed::Head("header value"))?;
        headers.append(name, value);
    }
    buffer.advance(length);
    Ok(Some(Head {
        status,
        version,
        headers,
    }))
}

fn httparse_reason(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "version",
    }
}

/// How the body of a response is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Framing {
    /// The framing of a response to a request with `method`.
    pub(crate) fn of(method: &Method, head: &Head) -> Result<Framing, Malformed> {
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Malformed::Upgrade);
        }
        if *method == Method::HEAD
            || head.status == StatusCode::NO_CONTENT
            || head.status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty);
        }
        let encodings = head.headers.get_all(header::TRANSFER_ENCODING);
        if encodings.iter().next().is_some() {
            if head.headers.contains_key(header::CONTENT_LENGTH) {
                return Err(Malformed::AmbiguousLength);
            }
            // The router decodes `chunked` and sends the body on re-framed,
            // and Transfer-Encoding is hop-by-hop: any other coding (`gzip,
            // chunked`) would reach the client still applied but no longer
            // named, so such a response is refused rather than corrupted.
            let mut codings = encodings
                .iter()
                .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|coding| !coding.is_empty());
            return match (codings.next(), codings.next()) {
                (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => {
                    Ok(Framing::Chunked)
                }
                _ => Err(Malformed::UnsupportedTransferCoding),
            };
        }
        let mut length = None;
        for value in head.headers.get_all(header::CONTENT_LENGTH) {
            for part in value.as_bytes().split(|byte| *byte == b',') {
                let parsed = parse_decimal(part.trim_ascii()).ok_or(Malformed::InvalidLength)?;
                if length.is_some_and(|seen| seen != parsed) {
                    return Err(Malformed::InvalidLength);
                }
                length = Some(parsed);
            }
        }
        Ok(length.map_or(Framing::UntilClose, Framing::Length))
    }
}

/// Whether the connection may carry another request once this response's
/// body has been read.
pub(crate) fn keeps_alive(head: &Head, framing: Framing) -> bool {
    let close = head
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
    head.version == Version::HTTP_11 && !close && framing != Framing::UntilClose
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |sum, digit| {
        sum.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section (ignored).
    Trailers,
    /// The body has ended.
    Done,
}

/// What the decoder made of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body data.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body has ended.
    End,
}

impl Chunked {
    /// Decodes from the front of `buffer` until it yields data, needs more
    /// bytes or ends.
    pub(crate) fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, Malformed> {
        loop {
            match *self {
                Chunked::Done => return Ok(Decoded::End),
                Chunked::Size => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    // Extensions after `;` are allowed and ignored.
                    let digits = line.split(|byte| *byte == b';').next().unwrap_or_default();
                    let size = parse_hex(digits.trim_ascii_end()).ok_or(Malformed::InvalidChunk)?;
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buffer.len());
                    let rest = left - take as u64;
                    *self = if rest == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(rest)
                    };
                    return Ok(Decoded::Data(buffer.split_to(take).freeze()));
                }
                Chunked::DataEnd => {
                    if buffer.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(Malformed::InvalidChunk);
                    }
                    buffer.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        *self = Chunked::Done;
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line off the front of `buffer`, without its
/// CRLF, or `None` when it is not complete yet.
fn take_line(buffer: &mut BytesMut) -> Result<Option<Bytes>, Malformed> {
    match buffer.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => {
            let line = buffer.split_to(end).freeze();
            buffer.advance(2);
            Ok(Some(line))
        }
        None if buffer.len() > MAX_CHUNK_LINE => Err(Malformed::InvalidChunk),
        None => Ok(None),
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |sum, digit| {
        let value = char::from(*digit).to_digit(16)?;
        Some((sum << 4) | u64::from(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(raw: &str) -> Head {
        let mut buffer = BytesMut::from(raw);
        parse_head(&mut buffer).unwrap().unwrap()
    }

    #[test]
    fn a_head_is_parsed_and_consumed_leaving_the_body() {
        let mut buffer = BytesMut::from(
            "HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-a: 1\r\nx-a: 2\r\n\r\nhi",
        );
        let head = parse_head(&mut buffer).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::CREATED);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(&buffer[..], b"hi");
        assert_eq!(Framing::of(&Method::GET, &head), Ok(Framing::Length(2)));
        assert!(keeps_alive(&head, Framing::Length(2)));
    }

    #[test]
    fn a_partial_head_waits_and_an_oversized_one_is_refused() {
        let mut buffer = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-le");
        assert!(parse_head(&mut buffer).unwrap().is_none());
        let mut huge = BytesMut::from("HTTP/1.1 200 OK\r\nx: ");
        huge.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(parse_head(&mut huge).unwrap_err(), Malformed::HeadTooLarge);
        let mut garbage = BytesMut::from("SMTP ready\r\n\r\n");
        assert!(matches!(parse_head(&mut garbage), Err(Malformed::Head(_))));
    }

    #[test]
    fn ambiguous_or_invalid_lengths_are_refused() {
        let both =
            head_of("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(
            Framing::of(&Method::GET, &both),
            Err(Malformed::AmbiguousLength)
        );
        for bad in ["-1", "1x", "", "3, 4", "99999999999999999999"] {
            let head = head_of(&format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n"));
            assert_eq!(
                Framing::of(&Method::GET, &head),
                Err(Malformed::InvalidLength),
                "{bad:?}"
            );
        }
        let repeated = head_of("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(Framing::of(&Method::GET, &repeated), Ok(Framing::Length(3)));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = head_of("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n");
        assert_eq!(Framing::of(&Method::GET, &chunked), Ok(Framing::Chunked));
        // Codings the router would strip the name of while leaving them
        // applied: refused, never forwarded corrupted.
        for codings in [
            "gzip, chunked",
            "gzip",
            "chunked, chunked",
            "deflate\r\ntransfer-encoding: chunked",
        ] {
            let head = head_of(&format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: {codings}\r\n\r\n"
            ));
            assert_eq!(
                Framing::of(&Method::GET, &head),
                Err(Malformed::UnsupportedTransferCoding),
                "{codings}"
            );
        }
        let unframed = head_of("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            Framing::of(&Method::GET, &unframed),
            Ok(Framing::UntilClose)
        );
        assert!(!keeps_alive(&unframed, Framing::UntilClose));
        let sized = head_of("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
        assert_eq!(Framing::of(&Method::HEAD, &sized), Ok(Framing::Empty));
        let no_content = head_of("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(Framing::of(&Method::GET, &no_content), Ok(Framing::Empty));
        let upgrade = head_of("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        assert_eq!(Framing::of(&Method::GET, &upgrade), Err(Malformed::Upgrade));
        let closing = head_of("HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\n\r\n");
        assert!(!keeps_alive(&closing, Framing::Empty));
        let old = head_of("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(!keeps_alive(&old, Framing::Length(0)));
    }

    fn decode_all(wire: &[u8]) -> Result<(Vec<u8>, bool), Malformed> {
        // Fed one byte at a time: every state must cope with partial input.
        let mut decoder = Chunked::Size;
        let (mut buffer, mut body) = (BytesMut::new(), Vec::new());
        for byte in wire {
            buffer.extend_from_slice(&[*byte]);
            loop {
                match decoder.decode(&mut buffer)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((body, buffer.is_empty())),
                }
            }
        }
        Ok((body, false))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(decode_all(wire), Ok((b"hello, world".to_vec(), true)));
        let unfinished = decode_all(b"5\r\nhel");
        assert_eq!(unfinished, Ok((b"hel".to_vec(), false)));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(decode_all(wire), Err(Malformed::InvalidChunk), "{wire:?}");
        }
    }

    #[test]
    fn the_request_head_carries_the_body_framing_once() {
        let (mut parts, ()) = http::Request::post("http://ignored/orders?id=7")
            .header("host", "shop")
            .header("content-length", "999")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        encode_head(&parts, RequestBody::Chunked, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /orders?id=7 HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(&parts, RequestBody::Length(4), &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("host: shop\r\ncontent-length: 4\r\n\r\n")
        );
        parts.headers.remove("content-length");
        parts.method = Method::GET;
        let mut out = Vec::new();
        encode_head(&parts, RequestBody::None, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /orders?id=7 HTTP/1.1\r\nhost: shop\r\n\r\n"
        );
    }
}
