//! Hostile bytes on the wire, shared by the wire_* tests: malformed or ambiguous request
//! heads and bodies a client may send, and responses a hostile origin may send.
//!
//! Every request case must end in a 4xx and a closed connection with nothing forwarded;
//! every response case in a 502 (or a cut connection) with nothing cached.

use std::net::SocketAddr;
use std::time::Duration;

use super::client::Client;

/// What one attack on a fresh connection got back.
#[derive(Debug)]
pub struct Outcome {
    /// Status of the first complete response; `None` when none arrived.
    pub status: Option<u16>,
    /// Whether the proxy closed the connection after that (within a few seconds).
    pub closed: bool,
}

/// Sends `bytes` on a new connection, reads one response and waits for the close.
pub async fn attack(proxy: SocketAddr, bytes: &[u8]) -> Outcome {
    let mut c = Client::connect(proxy).await;
    let _ = c.try_send(bytes).await;
    let status = c.try_read_response().await.ok().map(|r| r.status());
    let closed = c.closes_within(Duration::from_secs(3)).await;
    Outcome { status, closed }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Malformed or ambiguous requests for `url` (absolute form, `host` its authority), each
/// with the status it must get. None of them may reach the origin.
pub fn request_attacks(url: &str, host: &str) -> Vec<(&'static str, u16, Vec<u8>)> {
    let post = format!("POST {url} HTTP/1.1\r\nHost: {host}\r\n");
    let p = post.as_bytes();
    let get = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n");
    let g = get.as_bytes();
    let chunked = cat(&[p, b"Transfer-Encoding: chunked\r\n\r\n"]);
    let c = chunked.as_slice();
    let te = |v: &str| {
        cat(&[
            p,
            format!("Transfer-Encoding: {v}\r\n\r\n").as_bytes(),
            b"5\r\nhello\r\n0\r\n\r\n",
        ])
    };
    let cl = |v: &str| {
        cat(&[
            p,
            format!("Content-Length: {v}\r\n\r\n").as_bytes(),
            b"hello",
        ])
    };
    let huge_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20 << 10));
    let many_ext: String = (0..600)
        .map(|_| format!("1;ext={}\r\nx\r\n", "v".repeat(30)))
        .chain(std::iter::once("0\r\n\r\n".to_string()))
        .collect();
    let big_trailer = format!(
        "5\r\nhello\r\n0\r\nX-Trailer: {}\r\n\r\n",
        "t".repeat(20 << 10)
    );
    vec![
        // Both framings at once, in either order (RFC 9112 §6.1).
        ("cl_then_te", 400, cat(&[p, b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"])),
        ("te_then_cl", 400, cat(&[p, b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"])),
        ("cl_then_te_gzip", 400, cat(&[p, b"Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello"])),
        // Content-Length: duplicates, lists, signs, spaces, hex, overflow.
        ("cl_duplicate_equal", 400, cat(&[p, b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"])),
        ("cl_duplicate_differing", 400, cat(&[p, b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"])),
        ("cl_list", 400, cl("5, 5")),
        ("cl_plus", 400, cl("+5")),
        ("cl_minus", 400, cl("-5")),
        ("cl_inner_space", 400, cl("5 5")),
        ("cl_hex", 400, cl("0x5")),
        ("cl_overflow", 400, cl("99999999999999999999999")),
        ("cl_empty", 400, cat(&[p, b"Content-Length: \r\n\r\nhello"])),
        // Transfer-Encoding other than one final `chunked`.
        ("te_gzip", 400, te("gzip")),
        ("te_chunked_gzip", 400, te("chunked, gzip")),
        ("te_gzip_chunked", 400, te("gzip, chunked")),
        ("te_chunked_twice", 400, te("chunked, chunked")),
        ("te_identity", 400, te("identity")),
        ("te_unknown", 400, te("sluice")),
        ("te_xchunked", 400, te("xchunked")),
        ("te_chunked_vt", 400, te("chunked\x0b")),
        ("te_chunked_identity", 400, te("chunked, identity")),
        ("te_empty_list_item", 400, te(",chunked")),
        ("te_two_lines", 400, cat(&[p, b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("te_space_before_colon", 400, cat(&[p, b"Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("te_tab_before_colon", 400, cat(&[p, b"Transfer-Encoding\t: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("te_folded", 400, cat(&[p, b"Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("te_folded_after_chunked", 400, cat(&[p, b"Transfer-Encoding: chunked\r\n , identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("cl_zero_then_te", 400, cat(&[p, b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])),
        ("te_in_http10", 400, format!("POST {url} HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes()),
        // Head syntax: obs-fold, whitespace before the colon, bare CR / LF, NUL and controls.
        ("obs_fold_space", 400, cat(&[g, b"X-A: a\r\n b\r\n\r\n"])),
        ("obs_fold_tab", 400, cat(&[g, b"X-A: a\r\n\tb\r\n\r\n"])),
        ("space_before_colon", 400, cat(&[g, b"X-A : a\r\n\r\n"])),
        ("leading_space_first_field", 400, format!("GET {url} HTTP/1.1\r\n Host: {host}\r\n\r\n").into_bytes()),
        ("bare_cr_in_value", 400, cat(&[g, b"X-A: a\rb\r\n\r\n"])),
        ("bare_cr_line_end", 400, cat(&[g, b"X-A: a\r\r\n\r\n"])),
        ("bare_lf_everywhere", 400, format!("GET {url} HTTP/1.1\nHost: {host}\n\n").into_bytes()),
        ("bare_lf_one_field", 400, cat(&[g, b"X-A: a\nX-B: b\r\n\r\n"])),
        ("bare_lf_end_of_head", 400, cat(&[g, b"X-A: a\r\n\n"])),
        ("bare_lf_request_line", 400, format!("GET {url} HTTP/1.1\nHost: {host}\r\n\r\n").into_bytes()),
        ("nul_in_name", 400, cat(&[g, b"X-\0A: a\r\n\r\n"])),
        ("nul_in_value", 400, cat(&[g, b"X-A: a\0b\r\n\r\n"])),
        ("ctl_in_value", 400, cat(&[g, b"X-A: a\x01b\r\n\r\n"])),
        ("del_in_value", 400, cat(&[g, b"X-A: a\x7fb\r\n\r\n"])),
        ("ctl_in_name", 400, cat(&[g, b"X-\x07A: a\r\n\r\n"])),
        ("empty_field_name", 400, cat(&[g, b": a\r\n\r\n"])),
        // Request line: one SP between its parts, no whitespace in the target, HTTP/1.x only.
        ("request_line_two_spaces", 400, format!("GET  {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()),
        ("request_line_tab", 400, format!("GET\t{url} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()),
        ("request_target_space", 400, format!("GET {url}/a b HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()),
        ("request_version_2", 400, format!("GET {url} HTTP/2.0\r\nHost: {host}\r\n\r\n").into_bytes()),
        ("request_no_version", 400, format!("GET {url}\r\n\r\n").into_bytes()),
        // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, a valid host[:port].
        ("host_missing_http11", 400, format!("GET {url} HTTP/1.1\r\nX-A: a\r\n\r\n").into_bytes()),
        ("host_twice", 400, cat(&[g, b"Host: other.example\r\n\r\n"])),
        ("host_twice_same", 400, cat(&[g, format!("Host: {host}\r\n\r\n").as_bytes()])),
        ("host_twice_http10", 400, format!("GET {url} HTTP/1.0\r\nHost: {host}\r\nHost: {host}\r\n\r\n").into_bytes()),
        ("host_userinfo", 400, format!("GET {url} HTTP/1.1\r\nHost: user@{host}\r\n\r\n").into_bytes()),
        ("host_space", 400, format!("GET {url} HTTP/1.1\r\nHost: a b\r\n\r\n").into_bytes()),
        ("host_path", 400, format!("GET {url} HTTP/1.1\r\nHost: {host}/x\r\n\r\n").into_bytes()),
        // Chunked bodies: bad sizes, extension and trailer abuse.
        ("chunk_size_not_hex", 400, cat(&[c, b"zz\r\nhello\r\n0\r\n\r\n"])),
        ("chunk_size_negative", 400, cat(&[c, b"-5\r\nhello\r\n0\r\n\r\n"])),
        ("chunk_size_overflow", 400, cat(&[c, b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n"])),
        // 2^64 + 5: wraps to 5 in a 64-bit size that does not check for overflow.
        ("chunk_size_17_digits", 400, cat(&[c, b"10000000000000005\r\nhello\r\n0\r\n\r\n"])),
        ("chunk_trailer_bare_lf", 400, cat(&[c, b"5\r\nhello\r\n0\r\nX-A: a\nX-B: b\r\n\r\n"])),
        ("chunk_size_0x", 400, cat(&[c, b"0x5\r\nhello\r\n0\r\n\r\n"])),
        ("chunk_size_empty", 400, cat(&[c, b"\r\nhello\r\n0\r\n\r\n"])),
        ("chunk_size_bare_lf", 400, cat(&[c, b"5\nhello\r\n0\r\n\r\n"])),
        ("chunk_data_overrun", 400, cat(&[c, b"5\r\nhelloXX\r\n0\r\n\r\n"])),
        ("chunk_ext_huge", 400, cat(&[c, huge_ext.as_bytes()])),
        ("chunk_ext_many", 400, cat(&[c, many_ext.as_bytes()])),
        ("chunk_trailer_huge", 431, cat(&[c, big_trailer.as_bytes()])),
    ]
}

/// What a hostile response must end in at the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 502 with a `Proxy-Status`.
    BadGateway,
    /// This status and body (a well-formed response with hostile bytes after it).
    Relayed(u16, &'static str),
}

/// Hostile responses an origin may send (all marked cacheable), each with what the client
/// must get. None may be cached, and the connection they came on may not be reused.
pub fn response_attacks() -> Vec<(&'static str, Expect, Vec<u8>)> {
    use Expect::*;
    const H: &str = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n";
    let r = |fields: &str, body: &str| format!("{H}{fields}\r\n{body}").into_bytes();
    let te = |v: &str| {
        r(
            &format!("Transfer-Encoding: {v}\r\n"),
            "5\r\nhello\r\n0\r\n\r\n",
        )
    };
    let chunk = |size: &str| {
        r(
            "Transfer-Encoding: chunked\r\n",
            &format!("{size}\r\nhello\r\n0\r\n\r\n"),
        )
    };
    let next = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 6\r\n\r\npoison";
    vec![
        (
            "cl_then_te",
            BadGateway,
            r(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "te_then_cl",
            BadGateway,
            r(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "cl_differing",
            BadGateway,
            r("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        ),
        (
            "cl_duplicate_equal",
            BadGateway,
            r("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "cl_list",
            BadGateway,
            r("Content-Length: 5, 5\r\n", "hello"),
        ),
        ("cl_plus", BadGateway, r("Content-Length: +5\r\n", "hello")),
        ("cl_hex", BadGateway, r("Content-Length: 0x5\r\n", "hello")),
        ("te_gzip", BadGateway, te("gzip")),
        ("te_chunked_gzip", BadGateway, te("chunked, gzip")),
        ("te_gzip_chunked", BadGateway, te("gzip, chunked")),
        ("te_chunked_twice", BadGateway, te("chunked, chunked")),
        ("te_identity", BadGateway, te("identity")),
        ("chunk_size_not_hex", BadGateway, chunk("zz")),
        ("chunk_size_negative", BadGateway, chunk("-5")),
        (
            "chunk_size_overflow",
            BadGateway,
            chunk("fffffffffffffffffff"),
        ),
        ("chunk_size_too_small", BadGateway, chunk("3")),
        (
            "obs_fold",
            BadGateway,
            r("X-A: a\r\n b\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "space_before_colon",
            BadGateway,
            r("Content-Length : 5\r\n", "hello"),
        ),
        (
            "bare_lf",
            BadGateway,
            b"HTTP/1.1 200 OK\nCache-Control: max-age=600\nContent-Length: 5\n\nhello".to_vec(),
        ),
        (
            // httparse skips the empty line; the scanner must still see the 100 as interim.
            "bare_lf_after_empty_line_and_interim",
            BadGateway,
            format!("\r\nHTTP/1.1 100 Continue\r\n\r\n{H}A: b\nContent-Length: 5\r\n\r\nhello")
                .into_bytes(),
        ),
        (
            "bare_cr",
            BadGateway,
            r("X-A: a\rb\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "nul_in_value",
            BadGateway,
            r("X-A: a\0b\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "nul_in_name",
            BadGateway,
            r("X-\0A: a\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            // sluice never forwards `Upgrade` (hop-by-hop), so no 101 is ever asked for; what
            // follows one is not HTTP (RFC 9110 §15.2.2).
            "switching_protocols_unasked",
            BadGateway,
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n{next}")
                .into_bytes(),
        ),
        (
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            "te_in_http10",
            BadGateway,
            format!("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{next}")
                .into_bytes(),
        ),
        (
            "status_not_a_number",
            BadGateway,
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ),
        // Well-framed, but with more bytes than the framing says: relayed as framed, and the
        // extra bytes never become the answer to the next request on that connection.
        (
            "body_longer_than_cl",
            Relayed(200, "hello"),
            r("Content-Length: 5\r\n", &format!("hello{next}")),
        ),
        (
            "no_content_with_body",
            Relayed(204, ""),
            format!("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello{next}").into_bytes(),
        ),
        (
            "not_modified_with_body",
            Relayed(304, ""),
            format!("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello{next}")
                .into_bytes(),
        ),
        (
            "chunked_then_more",
            Relayed(200, "hello"),
            r(
                "Transfer-Encoding: chunked\r\n",
                &format!("5\r\nhello\r\n0\r\n\r\n{next}"),
            ),
        ),
    ]
}
