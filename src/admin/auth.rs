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
/// sides are hashed to 32 bytes first, then every byte is compared.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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
}
