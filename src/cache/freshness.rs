//! Freshness lifetime (RFC 9111 §4.2.1–§4.2.2) and current age (§4.2.3), in whole seconds.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::HeaderMap;

use super::directives::{parse_delta, CacheControl, DELTA_MAX};
use super::meta::ObjectMeta;

/// Upper bound of heuristic freshness (Traffic Server's `heuristic_max_lifetime` default).
pub const HEURISTIC_MAX: u64 = 86_400;

/// Where a freshness lifetime came from (reported in Cache-Status `detail` and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `s-maxage` (shared caches only).
    SMaxAge,
    /// `max-age`.
    MaxAge,
    /// `Expires` minus `Date` (an invalid Expires means already expired).
    Expires,
    /// 10% of the time since Last-Modified, capped at [`HEURISTIC_MAX`].
    Heuristic,
    /// Nothing usable: lifetime 0.
    None,
}

/// A freshness lifetime and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Seconds the response is fresh for, counted from its generation (not from receipt).
    pub secs: u64,
    /// Which rule produced it.
    pub source: Source,
}

/// Status codes that are heuristically cacheable (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether the response carries explicit freshness (s-maxage, max-age or Expires).
pub fn has_explicit_freshness(cc: &CacheControl, headers: &HeaderMap) -> bool {
    cc.s_maxage.is_some() || cc.max_age.is_some() || headers.contains_key(EXPIRES)
}

/// The freshness lifetime of a stored response for a shared cache (RFC 9111 §4.2.1).
pub fn lifetime(status: u16, headers: &HeaderMap, response_time: SystemTime) -> Lifetime {
    lifetime_with(
        &CacheControl::parse(headers),
        status,
        headers,
        response_time,
    )
}

/// [`lifetime`] with the response's Cache-Control already parsed.
fn lifetime_with(
    cc: &CacheControl,
    status: u16,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Lifetime {
    if let Some(s) = cc.s_maxage {
        return Lifetime {
            secs: s,
            source: Source::SMaxAge,
        };
    }
    if let Some(s) = cc.max_age {
        return Lifetime {
            secs: s,
            source: Source::MaxAge,
        };
    }
    let date = date_value(headers).unwrap_or(response_time);
    if let Some(expires) = headers.get(EXPIRES) {
        // RFC 9111 §5.3: an invalid Expires (e.g. "0") means "already expired".
        let secs = text(expires)
            .and_then(|t| httpdate::parse_http_date(t.trim()).ok())
            .map_or(0, |e| secs_between(date, e));
        return Lifetime {
            secs,
            source: Source::Expires,
        };
    }
    // RFC 9111 §4.2.2: heuristics only for heuristically cacheable statuses or `public`.
    if heuristically_cacheable(status) || cc.public {
        if let Some(lm) = headers
            .get(LAST_MODIFIED)
            .and_then(text)
            .and_then(|t| httpdate::parse_http_date(t.trim()).ok())
        {
            let secs = (secs_between(lm, date) / 10).min(HEURISTIC_MAX);
            return Lifetime {
                secs,
                source: Source::Heuristic,
            };
        }
    }
    Lifetime {
        secs: 0,
        source: Source::None,
    }
}

/// The response's Date, if present and valid.
pub fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(DATE)
        .and_then(text)
        .and_then(|t| httpdate::parse_http_date(t.trim()).ok())
}

/// The Age header as delta-seconds (the first value; invalid counts as 0).
pub fn age_value(headers: &HeaderMap) -> u64 {
    headers
        .get(AGE)
        .and_then(text)
        .and_then(|t| t.split(',').next().and_then(parse_delta))
        .unwrap_or(0)
}

/// The corrected initial age (RFC 9111 §4.2.3): the age a response had when it arrived.
fn initial_age(headers: &HeaderMap, request_time: SystemTime, response_time: SystemTime) -> u64 {
    let date = date_value(headers).unwrap_or(response_time);
    let apparent_age = secs_between(date, response_time);
    let response_delay = secs_between(request_time, response_time);
    let corrected_age_value = age_value(headers).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// The initial age plus the time resident since `response_time`.
fn age_at(initial_age: u64, response_time: SystemTime, now: SystemTime) -> u64 {
    let resident_time = secs_between(response_time, now);
    initial_age.saturating_add(resident_time).min(DELTA_MAX)
}

/// What reuse decisions need from a stored response, derived once from its headers and
/// times when it is loaded or stored, instead of reparsing Cache-Control and dates on every
/// hit. A stored meta never changes in place (a 304 builds a new one), so neither do these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The response's Cache-Control.
    pub cc: CacheControl,
    /// Its freshness lifetime.
    pub lifetime: Lifetime,
    initial_age: u64,
    response_time: SystemTime,
}

impl Facts {
    /// Derives the facts of a stored response.
    pub fn of(meta: &ObjectMeta) -> Facts {
        let cc = CacheControl::parse(&meta.headers);
        Facts {
            lifetime: lifetime_with(&cc, meta.status, &meta.headers, meta.response_time),
            cc,
            initial_age: initial_age(&meta.headers, meta.request_time, meta.response_time),
            response_time: meta.response_time,
        }
    }

    /// Current age of the stored response at `now` (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> u64 {
        age_at(self.initial_age, self.response_time, now)
    }
}

/// `to - from` in whole seconds, 0 when negative.
pub fn secs_between(from: SystemTime, to: SystemTime) -> u64 {
    to.duration_since(from).map_or(0, |d: Duration| d.as_secs())
}

fn text(v: &http::HeaderValue) -> Option<&str> {
    v.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn date(secs: i64) -> String {
        let base = 1_700_000_000i64 + secs;
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(base as u64))
    }

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn lifetime_table() {
        let rows: Vec<(u16, Vec<(&str, String)>, u64, Source, &str)> = vec![
            (200, vec![("cache-control", "max-age=60".into())], 60, Source::MaxAge, "§5.2.2.1 max-age"),
            (200, vec![("cache-control", "max-age=60, s-maxage=5".into())], 5, Source::SMaxAge, "§5.2.2.10 s-maxage wins in a shared cache"),
            (200, vec![("cache-control", "max-age=60".into()), ("expires", date(3600))], 60, Source::MaxAge, "§5.3 max-age beats Expires"),
            (200, vec![("date", date(0)), ("expires", date(100))], 100, Source::Expires, "§4.2.1 Expires - Date"),
            (200, vec![("expires", date(100))], 100, Source::Expires, "§4.2.1 Date absent: response time"),
            (200, vec![("date", date(0)), ("expires", date(-100))], 0, Source::Expires, "Expires in the past"),
            (200, vec![("date", date(0)), ("expires", "0".into())], 0, Source::Expires, "§5.3 invalid Expires is stale"),
            (200, vec![("date", date(0)), ("expires", date(100)), ("last-modified", date(-864_000))], 100, Source::Expires, "§4.2.2 no heuristics with explicit"),
            (200, vec![("date", date(0)), ("last-modified", date(-36_000))], 3_600, Source::Heuristic, "§4.2.2 10% of LM age"),
            (200, vec![("date", date(0)), ("last-modified", date(-86_400_000))], HEURISTIC_MAX, Source::Heuristic, "heuristic capped"),
            (404, vec![("date", date(0)), ("last-modified", date(-1000))], 100, Source::Heuristic, "404 heuristically cacheable"),
            (302, vec![("date", date(0)), ("last-modified", date(-1000))], 0, Source::None, "302 not heuristically cacheable"),
            (302, vec![("cache-control", "public".into()), ("date", date(0)), ("last-modified", date(-1000))], 100, Source::Heuristic, "public allows heuristics"),
            (200, vec![("date", date(0)), ("last-modified", date(1000))], 0, Source::Heuristic, "LM in the future"),
            (200, vec![("date", date(0))], 0, Source::None, "nothing"),
            (200, vec![("cache-control", "max-age=bogus".into())], 0, Source::MaxAge, "invalid max-age is stale"),
        ];
        for (status, h, secs, source, clause) in rows {
            let got = lifetime(status, &headers(&h), t(0));
            assert_eq!(got, Lifetime { secs, source }, "{clause}");
        }
    }

    #[test]
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)]
    fn current_age_table() {
        // (headers, request_time, response_time, now, expected age, clause)
        let rows: Vec<(Vec<(&str, String)>, u64, u64, u64, u64, &str)> = vec![
            (vec![("date", date(0))], 0, 0, 0, 0, "fresh off the wire"),
            (vec![("date", date(0))], 0, 0, 30, 30, "resident time"),
            (vec![("date", date(0)), ("age", "100".into())], 0, 0, 0, 100, "upstream Age counts"),
            (vec![("date", date(0)), ("age", "100".into())], 0, 5, 5, 105, "Age corrected by response delay"),
            (vec![("date", date(-50))], 0, 0, 0, 50, "apparent age from Date"),
            (vec![("date", date(-50)), ("age", "10".into())], 0, 0, 0, 50, "max(apparent, corrected)"),
            (vec![("date", date(50))], 0, 0, 0, 0, "Date in the future: apparent age 0"),
            (vec![("age", "abc".into())], 0, 0, 7, 7, "invalid Age ignored"),
            (vec![("age", "5, 9".into())], 0, 0, 0, 5, "first Age value"),
            (vec![], 0, 2, 2, 2, "no Date: response time; delay counts"),
        ];
        for (h, req, resp, now, expect, clause) in rows {
            // Derived once at store time, the facts give the age at any later time.
            let mut meta = crate::cache::meta::tests::sample("http://a/x", &[], b"");
            (meta.headers, meta.request_time, meta.response_time) = (headers(&h), t(req), t(resp));
            assert_eq!(Facts::of(&meta).age(t(now)), expect, "{clause}");
        }
    }
}
