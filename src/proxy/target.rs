//! [`Target`]: where a proxied request goes, parsed from its absolute-form request-target.

use std::fmt;

use http::uri::{Authority, Uri};

use crate::cache::key::port_number;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The scheme's name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The origin a request is for: scheme, host, port and the origin-form path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub scheme: Scheme,
    /// Lowercase host name or IP literal, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Path and query in origin-form (`/` when empty).
    pub path: String,
}

/// Why a request-target is not one sluice can forward.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("sluice is a forward proxy: send requests in absolute form (http://host/path), e.g. with http_proxy set; the admin API is on its own port")]
    OriginForm,
    #[error("unsupported scheme {0:?}: only http and https URLs can be proxied")]
    Scheme(String),
    #[error("the request URL has no host")]
    NoHost,
    #[error("the request URL's port is not a number from 0 to 65535")]
    BadPort,
    #[error("CONNECT needs a host:port target")]
    BadAuthority,
    #[error("a CONNECT request has no content: send it without Content-Length or Transfer-Encoding, and the tunnel's bytes after its head")]
    ConnectContent,
}

impl Target {
    /// Parses an absolute-form request-target (`http://host[:port]/path?query`).
    /// Userinfo is dropped: it never reaches the origin, and the host alone is guarded.
    pub fn from_uri(uri: &Uri) -> Result<Target, TargetError> {
        let scheme = match uri.scheme_str() {
            None => return Err(TargetError::OriginForm),
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(s) => return Err(TargetError::Scheme(s.to_string())),
        };
        let authority = uri.authority().ok_or(TargetError::NoHost)?;
        let raw_host = authority_host(authority);
        let host = clean_host(raw_host).ok_or(TargetError::NoHost)?;
        let text = authority.as_str();
        // Userinfo (dropped) comes before the host: the port follows the host.
        let host_port = match text.as_bytes().iter().rposition(|&b| b == b'@') {
            Some(at) => &text[at + 1..],
            None => text,
        };
        let port = port_after(host_port, raw_host)?.unwrap_or(scheme.default_port());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Target {
            scheme,
            host,
            port,
            path,
        })
    }

    /// Parses a CONNECT request-target (`host:port`, port required).
    pub fn from_authority(authority: &Authority) -> Result<Target, TargetError> {
        let port = authority.port_u16().ok_or(TargetError::BadAuthority)?;
        let host = clean_host(authority.host()).ok_or(TargetError::BadAuthority)?;
        Ok(Target {
            scheme: Scheme::Https,
            host,
            port,
            path: String::new(),
        })
    }

    /// `host:port` with IPv6 brackets, as used in `Host` and CONNECT.
    pub fn authority(&self) -> String {
        let mut out = String::with_capacity(self.host.len() + 8);
        let _ = self.write_authority(&mut out); // writing to a String cannot fail
        out
    }

    /// Whether `value` is exactly [`authority`](Self::authority), compared without
    /// formatting it (a client's `Host` usually is).
    pub fn is_authority(&self, value: &[u8]) -> bool {
        let rest = if self.host.contains(':') {
            value
                .strip_prefix(b"[")
                .and_then(|r| r.strip_prefix(self.host.as_bytes()))
                .and_then(|r| r.strip_prefix(b"]"))
        } else {
            value.strip_prefix(self.host.as_bytes())
        };
        match rest {
            None => false,
            Some(rest) if self.port == self.scheme.default_port() => rest.is_empty(),
            Some(rest) => rest.strip_prefix(b":").is_some_and(|digits| {
                digits.first() != Some(&b'0') && port_number(digits) == Some(self.port)
            }),
        }
    }

    /// [`authority`](Self::authority), written into `out` (the request path formats it for
    /// every request: `Host`, the cache key, the log).
    fn write_authority(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if self.host.contains(':') {
            write!(out, "[{}]", self.host)?;
        } else {
            out.write_str(&self.host)?;
        }
        if self.port != self.scheme.default_port() {
            write!(out, ":{}", self.port)?;
        }
        Ok(())
    }

    /// The normalised absolute URL (as `Display` writes it), in one allocation.
    pub fn url(&self) -> String {
        let mut out = String::with_capacity(
            self.scheme.as_str().len() + 3 + self.host.len() + 8 + self.path.len(),
        );
        // Written piece by piece, not through `Display`: this runs on every request.
        out.push_str(self.scheme.as_str());
        out.push_str("://");
        let _ = self.write_authority(&mut out); // a String cannot fail
        out.push_str(&self.path);
        out
    }

    /// `host:port`, always with the port.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// The normalised absolute URL (lowercase scheme and host, default port omitted).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_str())?;
        f.write_str("://")?;
        self.write_authority(f)?;
        f.write_str(&self.path)
    }
}

/// The port `host_port` (`host[:port]`, no userinfo) names after `host`: `None` when there
/// is none or it is empty (RFC 3986 §3.2.3: the scheme's default), an error when it is not
/// digits within `u16` (the `http` crate's `port_u16` reads those as "no port", which would
/// send `:80abc` to port 80). URL authorities and `Host` fields share it.
pub(crate) fn port_after(host_port: &str, host: &str) -> Result<Option<u16>, TargetError> {
    match host_port.get(host.len()..) {
        None | Some("") | Some(":") => Ok(None),
        Some(tail) => tail
            .strip_prefix(':')
            .and_then(|digits| crate::cache::key::port_number(digits.as_bytes()))
            .map(Some)
            .ok_or(TargetError::BadPort),
    }
}

/// The host of an authority (`[userinfo@]host[:port]`, brackets kept), as
/// [`Authority::host`] gives it, found with byte searches: `Authority::host` runs two
/// reverse `char` searches (~400 instructions), and every request asks twice.
pub(crate) fn authority_host(authority: &Authority) -> &str {
    let text = authority.as_str();
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |at| at + 1);
    let host_port = &bytes[start..];
    let len = if host_port.first() == Some(&b'[') {
        host_port
            .iter()
            .position(|&b| b == b']')
            .map_or(host_port.len(), |i| i + 1)
    } else {
        host_port
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(host_port.len())
    };
    &text[start..start + len]
}

fn clean_host(host: &str) -> Option<String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<Target, TargetError> {
        Target::from_uri(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn is_authority_accepts_exactly_what_authority_writes() {
        for (url, value, same) in [
            ("http://example.com/", "example.com", true),
            ("http://example.com/", "example.com:80", false),
            ("http://example.com/", "Example.com", false),
            ("http://example.com/", "example.co", false),
            ("http://example.com/", "example.com.", false),
            ("http://example.com:8080/", "example.com:8080", true),
            ("http://example.com:8080/", "example.com:08080", false),
            ("http://example.com:8080/", "example.com:808", false),
            ("http://example.com:8080/", "example.com:+8080", false),
            ("http://example.com:8080/", "example.com", false),
            ("https://example.com:443/", "example.com", true),
            ("http://[::1]:8080/", "[::1]:8080", true),
            ("http://[::1]/", "[::1]", true),
            ("http://[::1]/", "::1", false),
        ] {
            let target = t(url).unwrap();
            assert_eq!(target.is_authority(value.as_bytes()), same, "{url} {value}");
            assert_eq!(target.authority() == value, same, "{url} {value}");
        }
    }

    #[test]
    fn absolute_form_table() {
        for (uri, url, host_port) in [
            (
                "http://Example.COM/a?b=1",
                "http://example.com/a?b=1",
                "example.com:80",
            ),
            (
                "http://example.com",
                "http://example.com/",
                "example.com:80",
            ),
            (
                "http://example.com:80/x",
                "http://example.com/x",
                "example.com:80",
            ),
            (
                "https://example.com:8443/",
                "https://example.com:8443/",
                "example.com:8443",
            ),
            ("http://[::1]:8080/p", "http://[::1]:8080/p", "[::1]:8080"),
            (
                "http://user:pw@127.0.0.1/",
                "http://127.0.0.1/",
                "127.0.0.1:80",
            ),
            (
                "http://example.com./",
                "http://example.com/",
                "example.com:80",
            ),
        ] {
            let target = t(uri).unwrap();
            assert_eq!(target.to_string(), url, "{uri}");
            assert_eq!(target.url(), url, "{uri}");
            assert_eq!(target.host_port(), host_port, "{uri}");
        }
    }

    #[test]
    fn authority_host_is_what_http_finds() {
        for a in [
            "example.com",
            "example.com:8080",
            "example.com:",
            "user@example.com:80",
            "user:pw@example.com",
            "a@b@example.com:1",
            "[::1]",
            "[::1]:8080",
            "u@[::1]:8080",
            "[v1.fe]:1",
            "127.0.0.1:80",
            "@host",
        ] {
            let a: Authority = a.parse().unwrap();
            assert_eq!(authority_host(&a), a.host(), "{a}");
        }
    }

    proptest::proptest! {
        #[test]
        fn authority_host_matches_http_on_any_authority(s in "[a-z0-9@:\\[\\].%-]{1,24}") {
            if let Ok(a) = s.parse::<Authority>() {
                proptest::prop_assert_eq!(authority_host(&a), a.host());
            }
        }
    }

    #[test]
    fn rejected_targets() {
        assert_eq!(t("/just/a/path"), Err(TargetError::OriginForm));
        assert_eq!(
            t("ftp://example.com/"),
            Err(TargetError::Scheme("ftp".into()))
        );
    }

    #[test]
    fn connect_authority_needs_a_port() {
        let a: Authority = "example.com:443".parse().unwrap();
        assert_eq!(Target::from_authority(&a).unwrap().port, 443);
        let a: Authority = "example.com".parse().unwrap();
        assert_eq!(Target::from_authority(&a), Err(TargetError::BadAuthority));
    }

    #[test]
    fn a_url_port_is_digits_within_u16_or_absent() {
        for (url, port) in [
            ("http://a.example/", Ok(80)),
            ("http://a.example:/", Ok(80)),
            ("https://a.example/", Ok(443)),
            ("http://a.example:8080/", Ok(8080)),
            ("http://u:p@a.example:81/", Ok(81)),
            ("http://[::1]:8081/", Ok(8081)),
            ("http://[::1]/", Ok(80)),
            ("http://127.0.0.1:80abc/", Err(TargetError::BadPort)),
            ("http://127.0.0.1:65616/", Err(TargetError::BadPort)),
        ] {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(Target::from_uri(&uri).map(|t| t.port), port, "{url}");
        }
    }
}
