//! Invalidation (RFC 9111 §4.4): a non-error response to an unsafe method invalidates the
//! target URI and same-origin Location / Content-Location URIs.

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method};

use super::key::CacheKey;

/// Cache keys to purge after a response to `method` with `status` for `request_uri`.
pub fn invalidations(
    method: &Method,
    status: u16,
    request_uri: &CacheKey,
    resp: &HeaderMap,
) -> Vec<CacheKey> {
    // Safe methods never invalidate; an unknown method is treated as unsafe.
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if safe || !(200..400).contains(&status) {
        return Vec::new();
    }
    let mut out = vec![request_uri.clone()];
    let Ok(base) = url::Url::parse(request_uri.as_str()) else {
        return out;
    };
    let origin = base.origin();
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(value) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(target) = base.join(value.trim()) else {
            continue;
        };
        // §4.4: only same-origin URIs, so one origin cannot purge another's objects.
        if target.origin() != origin {
            continue;
        }
        if let Ok(key) = CacheKey::parse(target.as_str()) {
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn invalidation_table() {
        let uri = CacheKey::parse("http://a.example/items/1").unwrap();
        let rows: Vec<(Method, u16, Vec<(&str, &str)>, Vec<&str>, &str)> = vec![
            (Method::POST, 200, vec![], vec!["http://a.example/items/1"], "POST 200 invalidates URI"),
            (Method::PUT, 201, vec![], vec!["http://a.example/items/1"], "PUT"),
            (Method::DELETE, 204, vec![], vec!["http://a.example/items/1"], "DELETE"),
            (Method::PATCH, 303, vec![], vec!["http://a.example/items/1"], "3xx is non-error"),
            (Method::from_bytes(b"PURGEX").unwrap(), 200, vec![], vec!["http://a.example/items/1"], "unknown method is unsafe"),
            (Method::POST, 500, vec![], vec![], "error status: nothing"),
            (Method::POST, 404, vec![], vec![], "4xx: nothing"),
            (Method::GET, 200, vec![], vec![], "safe method: nothing"),
            (Method::HEAD, 200, vec![], vec![], "HEAD: nothing"),
            (Method::POST, 201, vec![("location", "/items/2")], vec!["http://a.example/items/1", "http://a.example/items/2"], "relative Location"),
            (Method::POST, 200, vec![("content-location", "http://A.example:80/c")], vec!["http://a.example/items/1", "http://a.example/c"], "same origin after normalisation"),
            (Method::POST, 201, vec![("location", "http://b.example/x")], vec!["http://a.example/items/1"], "cross-origin Location ignored"),
            (Method::POST, 201, vec![("location", "https://a.example/x")], vec!["http://a.example/items/1"], "other scheme is another origin"),
            (Method::POST, 201, vec![("location", "/items/1")], vec!["http://a.example/items/1"], "no duplicates"),
        ];
        for (method, status, headers, expect, clause) in rows {
            let mut h = HeaderMap::new();
            for (n, v) in headers {
                h.insert(http::HeaderName::from_static(n), HeaderValue::from_static(v));
            }
            let got: Vec<String> = invalidations(&method, status, &uri, &h).iter().map(|k| k.to_string()).collect();
            assert_eq!(got, expect, "{clause}");
        }
    }
}
