//! `POST /purge`: `{"url": URL}` drops that URL's stored variants, `{"prefix": URL}` every URL
//! under it. Answers `{"purged": N}` with the number of objects (variants) removed.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::reply::{self, ApiError};
use super::Admin;
use crate::body::Body;
use crate::cache::key::CacheKey;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
}

/// Handles `POST /purge`.
pub async fn handle(admin: &Admin, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: PurgeRequest =
        reply::read_json(req, reply::MAX_BODY, admin.proxy.cfg.header_timeout).await?;
    let cache = admin.proxy.cache.clone();
    // A purge runs to its end as a task of its own: hyper drops this handler when the client
    // hangs up (a timeout on a large prefix), which stopped a prefix purge part of the way.
    // Shutdown still waits for it, then stops it ([`Admin::run_to_end`]).
    let purge = match (body.url, body.prefix) {
        (Some(url), None) => {
            let key = key(&url)?;
            admin
                .run_to_end(async move { cache.remove(&key).await })
                .await
        }
        // The prefix is normalised like a URL (a bare origin gains its `/`), then matched
        // as a plain string prefix of the stored URLs.
        (None, Some(prefix)) => {
            let prefix = key(&prefix)?;
            admin
                .run_to_end(async move { cache.remove_prefix(prefix.as_str()).await })
                .await
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of \"url\" or \"prefix\"",
            ))
        }
    };
    let purged = match purge {
        Some(Ok(n)) => n,
        Some(Err(e)) => return Err(ApiError::internal(format!("purge failed: {e}"))),
        None => {
            return Err(ApiError::internal(
                "purge stopped (shutdown, or the task failed)",
            ))
        }
    };
    tracing::info!(purged, "admin purge");
    Ok(reply::json(StatusCode::OK, &json!({ "purged": purged })))
}

fn key(url: &str) -> Result<CacheKey, ApiError> {
    CacheKey::parse(url).map_err(|e| ApiError::bad_request(e.to_string()))
}
