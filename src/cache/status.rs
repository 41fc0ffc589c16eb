//! The `Cache-Status` response header (RFC 9211), e.g. `sluice; hit; ttl=42` or
//! `sluice; fwd=miss; stored`.

use std::fmt::Write;

/// The cache's name in Cache-Status.
pub const CACHE_NAME: &str = "sluice";

/// The field value of a plain hit (`CacheStatus::hit()`).
const PLAIN_HIT: &str = "sluice; hit";

/// Cache-Status `detail` of a stale object served because its revalidation failed (RFC 5861
/// §4, RFC 9111 §4.2.4).
pub const STALE_IF_ERROR: &str = "stale-if-error";

/// Why the request went forward to the origin (RFC 9211 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fwd {
    /// The cache was configured or asked not to look (e.g. non-cacheable method for the lookup).
    Bypass,
    /// The method is never served from cache.
    Method,
    /// No stored response for the URL.
    UriMiss,
    /// Stored responses exist but none match the request's Vary headers.
    VaryMiss,
    /// Generic miss.
    Miss,
    /// The request's directives (no-cache, max-age=0) forced it.
    Request,
    /// The stored response was stale.
    Stale,
    /// Only part of the response was stored.
    Partial,
}

impl Fwd {
    fn token(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Partial => "partial",
        }
    }
}

/// One Cache-Status entry for this cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from cache without forwarding.
    pub hit: bool,
    /// Forwarded, and why.
    pub fwd: Option<Fwd>,
    /// Status of the forwarded response (e.g. 304 after validation).
    pub fwd_status: Option<u16>,
    /// Remaining freshness in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// The forwarded response was stored.
    pub stored: bool,
    /// This request waited for another one's fetch (collapsed).
    pub collapsed: bool,
    /// Free-form detail token (e.g. why not stored).
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// A hit served from cache.
    pub fn hit() -> Self {
        CacheStatus {
            hit: true,
            ..Default::default()
        }
    }

    /// Forwarded to the origin for `fwd`.
    pub fn forward(fwd: Fwd) -> Self {
        CacheStatus {
            fwd: Some(fwd),
            ..Default::default()
        }
    }

    /// A stale object served because its revalidation (forwarded for `fwd`) failed: no hit,
    /// since the request went forward (RFC 9211 §2.1), with the status the next hop answered
    /// when it answered at all.
    pub fn stale_on_error(fwd: Fwd, fwd_status: Option<u16>) -> Self {
        CacheStatus {
            fwd_status,
            detail: Some(STALE_IF_ERROR),
            ..CacheStatus::forward(fwd)
        }
    }

    /// The field value as a header value. A plain hit, the value of most responses, is a
    /// static: no formatting and no allocation.
    pub fn to_header(&self) -> Option<http::HeaderValue> {
        if *self == CacheStatus::hit() {
            return Some(http::HeaderValue::from_static(PLAIN_HIT));
        }
        http::HeaderValue::try_from(self.header_value()).ok()
    }

    /// Formats the field value.
    pub fn header_value(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(CACHE_NAME);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            s.push_str("; fwd=");
            s.push_str(f.token());
        }
        if let Some(st) = self.fwd_status {
            s.push_str("; fwd-status=");
            s.push_str(itoa::Buffer::new().format(st));
        }
        if let Some(t) = self.ttl {
            s.push_str("; ttl=");
            s.push_str(itoa::Buffer::new().format(t));
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            // sf-token characters only; anything else becomes a quoted sf-string.
            if !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/*".contains(&b))
                && d.as_bytes()[0].is_ascii_alphabetic()
            {
                s.push_str("; detail=");
                s.push_str(d);
            } else {
                let q: String = d
                    .chars()
                    .filter(|c| c.is_ascii() && !c.is_ascii_control())
                    .collect();
                let _ = write!(
                    s,
                    "; detail=\"{}\"",
                    q.replace('\\', "\\\\").replace('"', "\\\"")
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn formatting_table() {
        let rows = vec![
            (CacheStatus::hit(), "sluice; hit"),
            (CacheStatus { ttl: Some(42), ..CacheStatus::hit() }, "sluice; hit; ttl=42"),
            (CacheStatus { stored: true, ..CacheStatus::forward(Fwd::Miss) }, "sluice; fwd=miss; stored"),
            (CacheStatus::forward(Fwd::UriMiss), "sluice; fwd=uri-miss"),
            (CacheStatus { fwd_status: Some(304), ..CacheStatus::forward(Fwd::Stale) }, "sluice; fwd=stale; fwd-status=304"),
            (CacheStatus { stored: true, fwd_status: Some(200), ..CacheStatus::forward(Fwd::Stale) }, "sluice; fwd=stale; fwd-status=200; stored"),
            (CacheStatus { collapsed: true, ..CacheStatus::hit() }, "sluice; hit; collapsed"),
            (CacheStatus { ttl: Some(-5), ..CacheStatus::hit() }, "sluice; hit; ttl=-5"),
            (CacheStatus::forward(Fwd::VaryMiss), "sluice; fwd=vary-miss"),
            (CacheStatus::stale_on_error(Fwd::Stale, Some(503)), "sluice; fwd=stale; fwd-status=503; detail=stale-if-error"),
            (CacheStatus::stale_on_error(Fwd::Stale, None), "sluice; fwd=stale; detail=stale-if-error"),
            (CacheStatus::forward(Fwd::Request), "sluice; fwd=request"),
            (CacheStatus { detail: Some("no-store"), ..CacheStatus::forward(Fwd::Miss) }, "sluice; fwd=miss; detail=no-store"),
            (CacheStatus { detail: Some("a b\"c"), ..CacheStatus::forward(Fwd::Bypass) }, "sluice; fwd=bypass; detail=\"a b\\\"c\""),
        ];
        for (cs, expect) in rows {
            assert_eq!(cs.header_value(), expect);
            assert_eq!(cs.to_header().unwrap(), expect, "the header value of {cs:?}");
        }
    }
}
