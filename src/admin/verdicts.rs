//! `GET /verdicts/{sha256}`, `GET /verdicts?url=URL`, `GET /verdicts?class=C&limit=&after=&since=`.
//!
//! Verdicts are read from the `verdicts` tree whatever ruleset produced them (the stored one is
//! the latest). The class listing walks `verdicts_by_class` newest first; the cursor is the
//! key's part after `class|` (inverted time and SHA-256), and an index entry whose verdict has
//! since changed class or time is skipped.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::reply::{self, query_param, ApiError};
use super::{blocking, Admin};
use crate::body::Body;
use crate::cache::key::CacheKey;
use crate::scan::pipeline::index;
use crate::scan::{Class, Verdict};
use crate::store::Store;

/// `GET /verdicts/{sha256}`.
pub async fn by_sha(admin: &Admin, path: &str) -> Result<Response<Body>, ApiError> {
    let sha = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "not a SHA-256 (64 hex digits): {sha}"
        )));
    }
    let store = admin.proxy.store.clone();
    let v = blocking(move || stored(&store, &sha)).await?;
    match v {
        Some(v) => Ok(reply::json(StatusCode::OK, &to_json(&v))),
        None => Err(ApiError::not_found("no verdict for that SHA-256")),
    }
}

/// `GET /verdicts?url=` or `GET /verdicts?class=`.
pub async fn query(admin: &Admin, q: Option<&str>) -> Result<Response<Body>, ApiError> {
    let store = admin.proxy.store.clone();
    if let Some(url) = reply::query_param_plus(q, "url") {
        let v = blocking(move || by_url(&store, &url)).await?;
        return Ok(reply::json(StatusCode::OK, &v));
    }
    let Some(class) = query_param(q, "class") else {
        return Err(ApiError::bad_request(
            "give url=URL or class=CLASS (clean, suspect, spam, listed)",
        ));
    };
    let class: Class = serde_json::from_value(Value::String(class.clone()))
        .map_err(|_| ApiError::bad_request(format!("unknown class {class:?}")))?;
    let limit = reply::page_limit(q)?;
    let after = query_param(q, "after");
    let since = match reply::query_param_plus(q, "since") {
        None => None,
        Some(s) => Some(parse_since(&s).ok_or_else(|| {
            ApiError::bad_request(format!("since must be an RFC 3339 time, not {s:?}"))
        })?),
    };
    let page = blocking(move || list(&store, class, limit, after.as_deref(), since)).await?;
    Ok(reply::json(StatusCode::OK, &page))
}

/// `since=` as seconds since the epoch. The value keeps its `+` (an offset, `+01:00`), so
/// a form-encoded space between date and time (`2026-11-25+00:00:00Z`) arrives as a `+`.
fn parse_since(s: &str) -> Option<u64> {
    match s.split_at_checked(10) {
        Some((date, time)) if time.starts_with('+') => {
            index::parse_rfc3339(&format!("{date} {}", &time[1..]))
        }
        _ => index::parse_rfc3339(s),
    }
}

fn stored(store: &Store, sha: &str) -> Result<Option<Verdict>, ApiError> {
    Ok(store
        .verdicts
        .get(sha.as_bytes())?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

fn to_json(v: &Verdict) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The latest verdict of a URL, with `url` and `fetched_at` flattened in.
fn by_url(store: &Store, url: &str) -> Result<Value, ApiError> {
    let mut candidates = vec![url.to_string()];
    if let Ok(k) = CacheKey::parse(url) {
        candidates.push(k.as_str().to_string());
    }
    let mut rec = None;
    for c in &candidates {
        if let Some(raw) = store.urls.get(c.as_bytes())? {
            rec = serde_json::from_slice::<Value>(&raw).ok().map(|r| (c, r));
            break;
        }
    }
    let Some((found_url, rec)) = rec else {
        return Err(ApiError::not_found("no verdict recorded for that URL"));
    };
    let sha = rec.get("sha256").and_then(Value::as_str).unwrap_or("");
    let Some(v) = stored(store, sha)? else {
        return Err(ApiError::not_found(
            "that URL's body has no stored verdict (it was not scanned completely)",
        ));
    };
    let mut out = to_json(&v);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("url".into(), json!(found_url));
        obj.insert(
            "fetched_at".into(),
            rec.get("fetched_at").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(out)
}

/// One page of a class, newest first.
fn list(
    store: &Store,
    class: Class,
    limit: usize,
    after: Option<&str>,
    since: Option<u64>,
) -> Result<Value, ApiError> {
    let prefix = index::class_prefix(class);
    let mut start = prefix.clone();
    if let Some(a) = after {
        if a.len() != 80 || !a.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(
                "after is not a cursor from a previous page",
            ));
        }
        start.extend_from_slice(a.as_bytes());
        start.push(0); // strictly after the cursor's key
    }
    let mut items = Vec::new();
    let mut next = None;
    let mut more = false;
    for kv in store.verdicts_by_class.range(start..) {
        let (k, _) = kv?;
        let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
            break;
        };
        let Some(secs) = index::key_secs(rest) else {
            continue;
        };
        if since.is_some_and(|s| secs < s) {
            break;
        }
        let sha = String::from_utf8_lossy(rest.get(16..).unwrap_or_default()).into_owned();
        let Some(v) = stored(store, &sha)? else {
            continue;
        };
        if index::key(&v).as_deref() != Some(k.as_ref()) {
            continue; // reclassified or rescanned since: its current entry is elsewhere
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(to_json(&v));
        next = Some(String::from_utf8_lossy(rest).into_owned());
    }
    // `next` is only a cursor when another entry follows the page.
    Ok(json!({ "items": items, "next": if more { next } else { None } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_offsets_and_a_form_encoded_space() {
        let z = index::parse_rfc3339("2026-11-25T00:00:00Z");
        assert!(z.is_some());
        for s in [
            "2026-11-25T00:00:00Z",
            "2026-11-25T01:00:00+01:00",
            "2026-11-24T23:00:00-01:00",
            "2026-11-25 00:00:00Z",
            "2026-11-25+00:00:00Z",
            "2026-11-25+01:00:00+01:00",
        ] {
            assert_eq!(parse_since(s), z, "{s}");
        }
        assert_eq!(parse_since("2026-11-25T00:00:00 01:00"), None);
        assert_eq!(parse_since("yesterday"), None);
        assert_eq!(parse_since("+"), None);
    }
}
