//! Bearer-token authentication for the admin API.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use super::reply::ApiError;

/// Accepts the request when no token is configured or `Authorization: Bearer <token>`
/// matches; otherwise a 401 carrying `WWW-Authenticate: Bearer`.
pub fn check(token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if token.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized("the bearer token is wrong")),
        None => Err(unauthorized(
            "this endpoint needs an Authorization: Bearer <token> header",
        )),
    }
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, msg).with_header("www-authenticate", "Bearer")
}

/// Equality whose time depends on neither the contents nor the length of the inputs: both
/// sides are hashed to 32 bytes first (so the lengths never meet a comparison), then the
/// digests are compared with `subtle`'s constant-time equality (no early exit, and written
/// so the optimiser cannot add one). Not timing-tested (such tests are flaky); this is the
/// guarantee, and the unit tests below pin the behaviour.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    bool::from(ha.as_slice().ct_eq(hb.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_checked() {
        assert!(check("", &HeaderMap::new()).is_ok());
        assert!(check("s3cret", &with("Bearer s3cret")).is_ok());
        assert!(check("s3cret", &with("bearer  s3cret ")).is_ok());
        assert!(check("s3cret", &with("Bearer s3cre")).is_err());
        assert!(check("s3cret", &with("Basic s3cret")).is_err());
        assert!(check("s3cret", &HeaderMap::new()).is_err());
        assert!(!constant_time_eq(b"a", b"b"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_compare_is_exact_whatever_the_lengths() {
        let token = b"0123456789abcdef0123456789abcdef";
        assert!(constant_time_eq(token, token));
        for other in [
            &token[..31],                                    // a prefix
            b"0123456789abcdef0123456789abcdeF".as_slice(),  // last byte
            b"1123456789abcdef0123456789abcdef".as_slice(),  // first byte
            b"0123456789abcdef0123456789abcdef0".as_slice(), // one longer
            b"".as_slice(),
        ] {
            assert!(!constant_time_eq(token, other), "{other:?}");
            assert!(!constant_time_eq(other, token), "{other:?}");
        }
        // Distinct inputs whose digests share no structure with them (length never leaks).
        assert!(!constant_time_eq(&[0u8; 1000], &[0u8; 999]));
    }

    #[test]
    fn only_a_bearer_with_the_exact_token_passes() {
        let t = "s3cret";
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearers3cret",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "Token s3cret",
            "s3cret",
        ] {
            let e = check(t, &with(bad)).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
            let resp = e.into_response();
            assert_eq!(
                resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{bad}"
            );
        }
    }
}
