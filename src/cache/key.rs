//! Cache keys: the primary key is the normalised absolute URL (RFC 9111 §2), method-independent
//! so HEAD is answered from a stored GET; the secondary key comes from Vary (see `vary`).

use std::fmt;

/// A key could not be made from a request target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not an absolute http(s) URL.
    #[error("not an absolute http or https URL: {0}")]
    NotAbsolute(String),
}

/// The primary cache key: scheme and host lowercased, default port removed, fragment dropped,
/// path dot-segments resolved; the query is kept byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Normalises an absolute URL.
    pub fn parse(url: &str) -> Result<CacheKey, KeyError> {
        let mut u = url::Url::parse(url).map_err(|_| KeyError::NotAbsolute(url.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(KeyError::NotAbsolute(url.to_string()));
        }
        u.set_fragment(None);
        // `url` already lowercases scheme and host and drops the scheme's default port.
        let s: String = u.into();
        // NUL separates primary and secondary keys in sled; a parsed URL never contains it.
        Ok(CacheKey(s))
    }

    /// The key of a request target in absolute form (what a forward proxy receives).
    pub fn from_uri(uri: &http::Uri) -> Result<CacheKey, KeyError> {
        Self::parse(&uri.to_string())
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scheme, host and port part, for same-origin checks.
    pub fn origin(&self) -> Option<String> {
        url::Url::parse(&self.0)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn normalisation_table() {
        for (input, expect) in [
            ("http://Example.COM/a", "http://example.com/a"),
            ("HTTP://example.com/a", "http://example.com/a"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("http://example.com:8080/a", "http://example.com:8080/a"),
            ("http://example.com", "http://example.com/"),
            ("http://example.com/a#frag", "http://example.com/a"),
            ("http://example.com/a/../b", "http://example.com/b"),
            ("http://example.com/a?B=1&a=2", "http://example.com/a?B=1&a=2"),
            ("http://example.com/A", "http://example.com/A"),
        ] {
            assert_eq!(CacheKey::parse(input).unwrap().as_str(), expect, "{input}");
        }
    }

    #[test]
    fn relative_and_foreign_schemes_are_rejected() {
        for bad in ["/a", "ftp://example.com/", "example.com/a", "mailto:a@b"] {
            assert!(CacheKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_is_scheme_host_port() {
        let k = CacheKey::parse("http://a.example:8080/x?y").unwrap();
        assert_eq!(k.origin().unwrap(), "http://a.example:8080");
    }
}
