//! JSON responses, the admin API's error type, and bounded request-body reading.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::body::{self, Body};

/// Largest request body of most endpoints.
pub const MAX_BODY: usize = 64 * 1024;

/// Largest `POST /hashes` body (about 200,000 entries).
pub const MAX_HASHES_BODY: usize = 32 * 1024 * 1024;

/// A failed admin request: status, one-sentence message, the failing array index if any.
#[derive(Debug)]
pub struct ApiError {
    /// The response status.
    pub status: StatusCode,
    /// `{"error": ...}`.
    pub message: String,
    /// `{"index": ...}` for the failing entry of an array.
    pub index: Option<usize>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            index: None,
            headers: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 Internal Server Error (store failures).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 405 with `Allow` listing `allowed`.
    pub fn method_not_allowed(allowed: &[Method]) -> ApiError {
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; use {list}"),
        )
        .with_header("allow", &list)
    }

    /// Adds a response header (ignored if `value` is not a valid field value).
    pub fn with_header(mut self, name: &'static str, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// Marks the failing entry of an array request.
    pub fn at(mut self, index: usize) -> ApiError {
        self.index = Some(index);
        self
    }

    /// The JSON error response.
    pub fn into_response(self) -> Response<Body> {
        let v = match self.index {
            Some(i) => json!({"error": self.message, "index": i}),
            None => json!({"error": self.message}),
        };
        let mut resp = json(self.status, &v);
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<sled::Error> for ApiError {
    fn from(e: sled::Error) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

/// A JSON response.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    text(status, "application/json", format!("{v}\n"))
}

/// A response with a body of the given media type.
pub fn text(status: StatusCode, media_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    resp
}

/// Reads the whole body, refusing more than `limit` bytes with 413, and answering 408 (and
/// closing) when no byte of it arrives for `idle`: hyper's header timer stops at the end of
/// the head, so a client that declared a body and sent none of it (or stopped part way) held
/// its connection and handler for ever. Like nginx's `client_body_timeout`, the limit is
/// between reads, so a large `POST /hashes` over a slow link still gets through.
pub async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    idle: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Limited::new(req.into_body(), limit);
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(out.into()),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body stopped arriving (nothing for {} ms)",
                        idle.as_millis()
                    ),
                )
                .with_header("connection", "close"))
            }
        };
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "cannot read the request body: {e}"
                )))
            }
        }
    }
}

/// Reads and parses a JSON body ([`read_body`]); malformed JSON is a 400 naming the parse
/// error.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
    idle: Duration,
) -> Result<T, ApiError> {
    let bytes = read_body(req, limit, idle).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// The value of query parameter `name` (percent-decoded), if present.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Like [`query_param`], but a `+` stays a `+`: for a value that is a URL or a time, where
/// `+` is part of the value (a URL's query `q=a+b`, a time's offset `+01:00`) and a space
/// never is, so the `+` a client typed unencoded (as the README's curl examples do) is not
/// turned into a space that no stored URL or RFC 3339 time contains. A form-encoding client
/// sends a `+` of the value as `%2B`, which decodes the same either way.
pub fn query_param_plus(query: Option<&str>, name: &str) -> Option<String> {
    query_param(query.map(|q| q.replace('+', "%2B")).as_deref(), name)
}

/// `limit=` clamped to 1..=1000 (default 100); a non-number is a 400.
pub fn page_limit(query: Option<&str>) -> Result<usize, ApiError> {
    match query_param(query, "limit") {
        None => Ok(100),
        // A whole number too large for a usize is still a number: it clamps like any other.
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(s.parse::<usize>().map_or(1000, |n| n.clamp(1, 1000)))
        }
        Some(s) => Err(ApiError::bad_request(format!(
            "limit must be a number, not {s:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_stays_a_plus_only_where_asked() {
        let q = Some("url=http://a.test/s?q=a+b%2Bc&since=2026-11-25T00:00:00+01:00");
        assert_eq!(
            query_param_plus(q, "url").as_deref(),
            Some("http://a.test/s?q=a+b+c")
        );
        assert_eq!(
            query_param_plus(q, "since").as_deref(),
            Some("2026-11-25T00:00:00+01:00")
        );
        assert_eq!(
            query_param(Some("list=abuse+reports"), "list").as_deref(),
            Some("abuse reports")
        );
    }

    #[test]
    fn page_limits_clamp_and_only_non_numbers_are_refused() {
        for (q, want) in [
            (None, Some(100)),
            (Some("limit=0"), Some(1)),
            (Some("limit=5"), Some(5)),
            (Some("limit=5000"), Some(1000)),
            (Some("limit=99999999999999999999999"), Some(1000)),
            (Some("limit=-1"), None),
            (Some("limit="), None),
            (Some("limit=ten"), None),
            (Some("limit=1.5"), None),
        ] {
            assert_eq!(page_limit(q).ok(), want, "{q:?}");
        }
    }
}
