//! Hop-by-hop header handling (RFC 9110 §7.6.1) and `Via` (RFC 9110 §7.6.3).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

/// `Proxy-Connection`: not standard, but sent by old clients in place of `Connection`.
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

const HOP_COUNT: usize = 9;

/// Header fields that describe one connection and never cross the proxy.
static HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    header::CONNECTION,
    PROXY_CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Whether the fields left by [`strip_hop_by_hop`] keep the order they were received in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Requests: origins (and their bot detection) see the client's field order.
    Kept,
    /// Responses: clients read fields by name, so the cheaper in-place removal does, though
    /// `HeaderMap::remove` moves the last field into the removed one's slot.
    Any,
}

/// Removes the hop-by-hop fields, including every field that `Connection` names.
///
/// Runs on every request and response. One pass over the names finds what is present; most
/// messages carry only `Connection`, and many nothing at all.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, order: Order) {
    let mut present = [false; HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let named: Vec<HeaderName> = if present[0] || present[1] {
        // `keep-alive`, the usual token, is in the fixed set already. (`close` is not: a
        // field named `Close` goes too, RFC 9110 §7.6.1.)
        connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case(b"keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect()
    } else {
        Vec::new()
    };
    if order == Order::Any {
        let fixed = HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p);
        for name in named.iter().chain(fixed.map(|(name, _)| name)) {
            headers.remove(name);
        }
        return;
    }
    let received = std::mem::take(headers);
    headers.reserve(received.len());
    // The map yields a name with its first value only; `kept` carries it to the rest.
    let mut kept: Option<HeaderName> = None;
    for (name, value) in received {
        if let Some(name) = name {
            kept = (!HOP_BY_HOP.contains(&name) && !named.contains(&name)).then_some(name);
        }
        if let Some(name) = &kept {
            headers.append(name.clone(), value);
        }
    }
}

/// Whether a message's `Connection` (or an HTTP/1.0 client's `Proxy-Connection`) asks to
/// keep the connection open, given the protocol version it arrived in.
pub fn wants_keep_alive(version: Version, headers: &HeaderMap) -> bool {
    if connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"close")) {
        return false;
    }
    match version {
        Version::HTTP_09 | Version::HTTP_10 => {
            connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"keep-alive"))
        }
        _ => true,
    }
}

/// The trimmed tokens of `Connection` and `Proxy-Connection`, in order. Read as bytes: a
/// line that also holds obs-text (which `HeaderValue::to_str` refuses) still names its
/// fields and its `close`, so they are not relayed or ignored for a stray byte.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .chain(headers.get_all(PROXY_CONNECTION).iter())
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Each protocol version a message can arrive in, with its `<received-protocol>` (RFC 9110
/// §7.6.3) and this hop's `Via` entry on a response, spelled out so no response formats it.
const PROTOCOLS: [(Version, &str, &str); 5] = [
    (Version::HTTP_09, "0.9", "0.9 sluice"),
    (Version::HTTP_10, "1.0", "1.0 sluice"),
    (Version::HTTP_11, "1.1", "1.1 sluice"),
    (Version::HTTP_2, "2", "2 sluice"),
    (Version::HTTP_3, "3", "3 sluice"),
];

/// `received`'s row of [`PROTOCOLS`] (HTTP/1.1's for a version `http` adds later).
fn protocol_index(received: Version) -> usize {
    PROTOCOLS
        .iter()
        .position(|(v, ..)| *v == received)
        .unwrap_or(2)
}

/// This hop's `Via` entry on a response: `<received-protocol> sluice`.
pub fn response_hop(received: Version) -> HeaderValue {
    HeaderValue::from_static(PROTOCOLS[protocol_index(received)].2)
}

/// How this instance names itself in `Via` on the requests it sends upstream: the pseudonym
/// `sluice` with a comment holding a token drawn at start, `1.1 sluice (id=…)`. A request
/// that already carries the token has been here before: a parent list that names this proxy,
/// or two proxies that are each other's parent. It is refused (502, `proxy_loop_detected`)
/// instead of going round until connections run out, as Squid and Traffic Server do with
/// their own names in `Via`. Responses name the hop `sluice` alone: only requests loop.
#[derive(Clone, Debug)]
pub struct ViaName {
    token: String,
    /// The entry for a request received in each of [`PROTOCOLS`].
    hops: [HeaderValue; 5],
}

impl Default for ViaName {
    fn default() -> Self {
        Self::new()
    }
}

impl ViaName {
    /// A name with a fresh token: distinct for each instance, in this process or another.
    pub fn new() -> ViaName {
        use std::hash::BuildHasher;
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = (std::process::id(), now, n);
        let token = foldhash::quality::RandomState::default().hash_one(seed);
        let token = format!("{token:016x}");
        let hops = PROTOCOLS.map(|(_, protocol, _)| {
            let hop = format!("{protocol} sluice (id={token})");
            HeaderValue::from_str(&hop)
                .expect("protocol, pseudonym and hex token are visible ASCII")
        });
        ViaName { token, hops }
    }

    /// This hop's `Via` entry on a request that arrived in `received`.
    pub fn request_hop(&self, received: Version) -> HeaderValue {
        self.hops[protocol_index(received)].clone()
    }

    /// Whether a request's `Via` shows that it has passed through this instance already.
    pub fn seen_in(&self, headers: &HeaderMap) -> bool {
        let token = self.token.as_bytes();
        headers
            .get_all(header::VIA)
            .iter()
            .any(|v| memchr::memmem::find(v.as_bytes(), token).is_some())
    }
}

/// Appends this hop (`response_hop` or `ViaName::request_hop`) to `Via`.
pub fn add_via(headers: &mut HeaderMap, hop: HeaderValue) {
    // One earlier line is extended in place (`Via: 1.1 cdn, 1.1 sluice`, as Squid writes
    // it); several lines, or one that is not visible ASCII, stay as they are and this hop
    // follows as a line of its own: the same list (RFC 9110 §5.3), no earlier hop lost.
    let mut lines = headers.get_all(header::VIA).iter();
    let joined = match (lines.next(), lines.next()) {
        (None, _) => Ok(hop),
        (Some(prev), None) => match prev.to_str() {
            Ok("") => Ok(hop),
            Ok(prev) => {
                let mut line = Vec::with_capacity(prev.len() + 2 + hop.len());
                line.extend_from_slice(prev.as_bytes());
                line.extend_from_slice(b", ");
                line.extend_from_slice(hop.as_bytes());
                HeaderValue::from_bytes(&line).map_err(|_| hop)
            }
            Err(_) => Err(hop),
        },
        (Some(_), Some(_)) => Err(hop),
    };
    match joined {
        Ok(v) => {
            headers.insert(header::VIA, v);
        }
        Err(hop) => {
            headers.append(header::VIA, hop);
        }
    }
}

/// A filter must see whole bodies: a ranged fetch would be scanned as a fragment, so a listed
/// body could be pulled in pieces. A GET goes upstream without `Range` and `If-Range` and is
/// fetched whole (scanned, and stored when allowed); the client then gets the full 200,
/// which RFC 9110 §14.2 permits, or its range served from a stored copy.
pub fn whole_body_only(headers: &mut HeaderMap) {
    headers.remove(header::RANGE);
    headers.remove(header::IF_RANGE);
}

/// The value of `Max-Forwards`, when present and valid.
pub fn max_forwards(headers: &HeaderMap) -> Option<u32> {
    headers
        .get(header::MAX_FORWARDS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_removed() {
        let h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", "Basic"),
            ("content-type", "text/plain"),
            ("content-length", "3"),
            ("cache-control", "max-age=5"),
        ]);
        for order in [Order::Kept, Order::Any] {
            let left = names_left(&h, order);
            assert_eq!(
                left,
                ["cache-control", "content-length", "content-type"],
                "{order:?}"
            );
        }
    }

    /// The names `strip_hop_by_hop` leaves, sorted.
    fn names_left(h: &HeaderMap, order: Order) -> Vec<String> {
        let mut h = h.clone();
        strip_hop_by_hop(&mut h, order);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        left.sort_unstable();
        left
    }

    /// Regression: a `Connection` line holding a byte outside visible ASCII (obs-text) was
    /// skipped whole (`to_str` fails), so the fields it named reached the next hop and its
    /// `close` was not seen: an origin's connection was pooled after it said it would close.
    #[test]
    fn a_connection_line_with_obs_text_still_names_its_fields_and_close() {
        let mut h = HeaderMap::new();
        let line = HeaderValue::from_bytes(b"X-Secret, close, caf\xc3\xa9").unwrap();
        h.append(header::CONNECTION, line);
        h.append("x-secret", HeaderValue::from_static("1"));
        h.append("accept", HeaderValue::from_static("*/*"));
        for order in [Order::Kept, Order::Any] {
            assert_eq!(names_left(&h, order), ["accept"], "{order:?}");
        }
        assert!(!wants_keep_alive(Version::HTTP_11, &h));
        let line = HeaderValue::from_bytes(b"keep-alive, \xff").unwrap();
        let h: HeaderMap = [(header::CONNECTION, line)].into_iter().collect();
        assert!(wants_keep_alive(Version::HTTP_10, &h));
    }

    #[test]
    fn fields_named_by_proxy_connection_alone_are_removed() {
        let h = map(&[
            ("proxy-connection", "Close, X-Other"),
            ("close", "a field named by the option"),
            ("x-other", "1"),
            ("te", "trailers"),
            ("accept", "*/*"),
        ]);
        for order in [Order::Kept, Order::Any] {
            assert_eq!(names_left(&h, order), ["accept"], "{order:?}");
        }
        let mut plain = map(&[("accept", "*/*"), ("host", "a")]);
        strip_hop_by_hop(&mut plain, Order::Kept);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn the_remaining_fields_keep_their_order_and_repeated_values() {
        let mut h = map(&[
            ("host", "a"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("te", "trailers"),
            ("user-agent", "ua"),
        ]);
        strip_hop_by_hop(&mut h, Order::Kept);
        let left: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            left,
            [
                ("host", "a"),
                ("accept", "*/*"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("user-agent", "ua"),
            ]
        );
    }

    #[test]
    fn keep_alive_table() {
        for (version, pairs, expect) in [
            (Version::HTTP_11, vec![], true),
            (Version::HTTP_11, vec![("connection", "close")], false),
            (
                Version::HTTP_11,
                vec![("connection", "Keep-Alive, CLOSE")],
                false,
            ),
            (Version::HTTP_10, vec![], false),
            (Version::HTTP_10, vec![("connection", "keep-alive")], true),
            (
                Version::HTTP_10,
                vec![("proxy-connection", "Keep-Alive")],
                true,
            ),
            (Version::HTTP_10, vec![("proxy-connection", "close")], false),
        ] {
            assert_eq!(
                wants_keep_alive(version, &map(&pairs)),
                expect,
                "{version:?} {pairs:?}"
            );
        }
    }

    #[test]
    fn via_is_appended_with_the_received_version() {
        let mut h = map(&[("via", "1.1 cdn")]);
        add_via(&mut h, response_hop(Version::HTTP_10));
        assert_eq!(h["via"], "1.1 cdn, 1.0 sluice");
        let mut h = HeaderMap::new();
        add_via(&mut h, response_hop(Version::HTTP_11));
        assert_eq!(h["via"], "1.1 sluice");
    }

    #[test]
    fn via_keeps_every_earlier_hop() {
        let mut h = HeaderMap::new();
        h.append(header::VIA, HeaderValue::from_static("1.1 c1"));
        h.append(header::VIA, HeaderValue::from_static("1.1 c2"));
        add_via(&mut h, response_hop(Version::HTTP_11));
        let lines: Vec<_> = h.get_all(header::VIA).iter().collect();
        assert_eq!(lines, ["1.1 c1", "1.1 c2", "1.1 sluice"]);

        let mut h = HeaderMap::new();
        let opaque = HeaderValue::from_bytes(b"1.1 caf\xc3\xa9").unwrap();
        h.insert(header::VIA, opaque.clone());
        add_via(&mut h, response_hop(Version::HTTP_11));
        let lines: Vec<_> = h.get_all(header::VIA).iter().collect();
        assert_eq!(lines, [&opaque, &HeaderValue::from_static("1.1 sluice")]);
    }

    #[test]
    fn a_request_that_carries_this_instances_via_name_is_recognised() {
        let (a, b) = (ViaName::new(), ViaName::new());
        assert_ne!(a.token, b.token, "each instance draws its own token");
        let hop = a.request_hop(Version::HTTP_10);
        assert_eq!(hop, format!("1.0 sluice (id={})", a.token).as_str());

        let mut h = map(&[("via", "1.1 cdn")]);
        assert!(!a.seen_in(&h), "no sluice hop yet");
        add_via(&mut h, b.request_hop(Version::HTTP_11));
        assert!(!a.seen_in(&h), "another sluice in the chain is not a loop");
        assert!(b.seen_in(&h));
        // Wherever the entry sits: joined into one line, or a line of its own.
        h.append(header::VIA, HeaderValue::from_static("2 edge"));
        add_via(&mut h, a.request_hop(Version::HTTP_11));
        assert!(a.seen_in(&h) && b.seen_in(&h));
        assert!(!ViaName::new().seen_in(&h));
    }

    #[test]
    fn max_forwards_parses_only_numbers() {
        assert_eq!(max_forwards(&map(&[("max-forwards", " 3 ")])), Some(3));
        assert_eq!(max_forwards(&map(&[("max-forwards", "x")])), None);
        assert_eq!(max_forwards(&HeaderMap::new()), None);
    }
}
