//! Table tests for `policy` and `validate`: one row per RFC 9111 clause.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::freshness::Facts;
use super::meta::tests::sample;
use super::meta::ObjectMeta;
use super::policy::*;
use super::validate::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn date(secs: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs((1_700_000_000 + secs) as u64))
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

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn storability_table() {
    use NotStorable::{
        Authorization, MustUnderstand, NoExplicitFreshness, NoStore, Partial, Private, Status,
        Useless, VaryStar,
    };
    let g = Method::GET;
    let rows: Vec<(Method, Vec<(&str, String)>, u16, Vec<(&str, String)>, Result<(), NotStorable>, &str)> = vec![
        (g.clone(), vec![], 200, vec![("cache-control", s("max-age=60"))], Ok(()), "§3 GET 200 with max-age"),
        (Method::HEAD, vec![], 200, vec![("cache-control", s("max-age=60"))], Err(NotStorable::Method), "HEAD answered from GET, not stored"),
        (Method::POST, vec![], 200, vec![("cache-control", s("max-age=60"))], Err(NotStorable::Method), "POST not stored"),
        (g.clone(), vec![], 200, vec![("cache-control", s("no-store, max-age=60"))], Err(NoStore), "§5.2.2.5 response no-store"),
        (g.clone(), vec![("cache-control", s("no-store"))], 200, vec![("cache-control", s("max-age=60"))], Err(NoStore), "§5.2.1.5 request no-store"),
        (g.clone(), vec![], 200, vec![("cache-control", s("private, max-age=60"))], Err(Private), "§5.2.2.7 private"),
        (g.clone(), vec![], 200, vec![("cache-control", s("private=\"x-user\", max-age=60"))], Ok(()), "qualified private: store without the field"),
        (g.clone(), vec![("authorization", s("Basic x"))], 200, vec![("cache-control", s("max-age=60"))], Err(Authorization), "§3.5 Authorization"),
        (g.clone(), vec![("authorization", s("Basic x"))], 200, vec![("cache-control", s("public, max-age=60"))], Ok(()), "§3.5 public allows"),
        (g.clone(), vec![("authorization", s("Basic x"))], 200, vec![("cache-control", s("s-maxage=60"))], Ok(()), "§3.5 s-maxage allows"),
        (g.clone(), vec![("authorization", s("Basic x"))], 200, vec![("cache-control", s("must-revalidate, max-age=60"))], Ok(()), "§3.5 must-revalidate allows"),
        (g.clone(), vec![], 200, vec![("cache-control", s("max-age=60")), ("vary", s("*"))], Err(VaryStar), "§4.1 Vary: *"),
        (g.clone(), vec![], 200, vec![("cache-control", s("max-age=60")), ("vary", s("accept-encoding"))], Ok(()), "Vary stored as a variant"),
        (g.clone(), vec![], 206, vec![("cache-control", s("max-age=60"))], Err(Partial), "§3.3 206 not stored as complete"),
        (g.clone(), vec![], 304, vec![("cache-control", s("max-age=60"))], Err(Status), "304 not stored"),
        (g.clone(), vec![], 100, vec![], Err(Status), "1xx"),
        (g.clone(), vec![], 302, vec![("last-modified", date(-1000))], Err(NoExplicitFreshness), "302 needs explicit freshness"),
        (g.clone(), vec![], 307, vec![("etag", s("\"a\""))], Err(NoExplicitFreshness), "307 needs explicit freshness"),
        (g.clone(), vec![], 302, vec![("cache-control", s("max-age=60"))], Ok(()), "302 with max-age"),
        (g.clone(), vec![], 307, vec![("expires", date(60))], Ok(()), "307 with Expires"),
        (g.clone(), vec![], 500, vec![("cache-control", s("max-age=60"))], Ok(()), "500 with explicit freshness"),
        (g.clone(), vec![], 500, vec![("last-modified", date(-1000))], Err(NoExplicitFreshness), "500 not heuristic"),
        (g.clone(), vec![], 302, vec![("cache-control", s("public")), ("last-modified", date(-1000))], Ok(()), "public makes any status storable"),
        (g.clone(), vec![], 200, vec![("last-modified", date(-1000))], Ok(()), "200 heuristic"),
        (g.clone(), vec![], 203, vec![("etag", s("\"a\""))], Ok(()), "203 with validator"),
        (g.clone(), vec![], 204, vec![("last-modified", date(-1000))], Ok(()), "204"),
        (g.clone(), vec![], 300, vec![("last-modified", date(-1000))], Ok(()), "300"),
        (g.clone(), vec![], 301, vec![("last-modified", date(-1000))], Ok(()), "301"),
        (g.clone(), vec![], 308, vec![("last-modified", date(-1000))], Ok(()), "308"),
        (g.clone(), vec![], 404, vec![("last-modified", date(-1000))], Ok(()), "404"),
        (g.clone(), vec![], 405, vec![("last-modified", date(-1000))], Ok(()), "405"),
        (g.clone(), vec![], 410, vec![("last-modified", date(-1000))], Ok(()), "410"),
        (g.clone(), vec![], 414, vec![("last-modified", date(-1000))], Ok(()), "414"),
        (g.clone(), vec![], 501, vec![("last-modified", date(-1000))], Ok(()), "501"),
        (g.clone(), vec![], 200, vec![("date", date(0))], Err(Useless), "nothing to go on"),
        (g.clone(), vec![], 200, vec![("cache-control", s("no-cache")), ("etag", s("\"a\""))], Ok(()), "§5.2.2.4 no-cache is stored"),
        (g.clone(), vec![], 200, vec![("cache-control", s("no-store, must-understand, max-age=60"))], Ok(()), "§5.2.2.3 must-understand overrides no-store"),
        (g.clone(), vec![], 299, vec![("cache-control", s("no-store, must-understand, max-age=60"))], Err(MustUnderstand), "must-understand, unknown status"),
    ];
    for (method, req, status, resp, expect, clause) in rows {
        let rh = headers(&req);
        let info = RequestInfo { method: &method, headers: &rh };
        assert_eq!(storable(&info, status, &headers(&resp)), expect, "{clause}");
    }
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn no_store_table() {
    let rows: Vec<(Vec<(&str, String)>, u16, Vec<(&str, String)>, bool, &str)> = vec![
        (vec![], 200, vec![("cache-control", s("max-age=60"))], false, "plain cacheable"),
        (vec![], 200, vec![("cache-control", s("private"))], false, "private is not no-store"),
        (vec![], 200, vec![("cache-control", s("no-cache"))], false, "no-cache is not no-store"),
        (vec![], 200, vec![("cache-control", s("max-age=60, No-Store"))], true, "§5.2.2.5 response, any case"),
        (vec![("cache-control", s("no-store"))], 200, vec![], true, "§5.2.1.5 request"),
        (vec![], 200, vec![("cache-control", s("no-store, must-understand"))], false, "§5.2.2.3 understood status overrides"),
        (vec![], 299, vec![("cache-control", s("no-store, must-understand"))], true, "must-understand, unknown status"),
        (vec![("cache-control", s("no-store"))], 200, vec![("cache-control", s("no-store, must-understand"))], true, "the request's own no-store stays"),
    ];
    for (req, status, resp, expect, clause) in rows {
        assert_eq!(no_store(&headers(&req), status, &headers(&resp)), expect, "{clause}");
    }
}

#[test]
fn body_completeness_and_unstored_fields() {
    let h = headers(&[("content-length", s("10"))]);
    assert!(body_complete(&h, 10));
    assert!(!body_complete(&h, 9), "truncated body");
    assert!(!body_complete(&h, 11));
    assert!(body_complete(&HeaderMap::new(), 3));
    assert!(!body_complete(&headers(&[("content-length", s("x"))]), 3));
    let h = headers(&[(
        "cache-control",
        s("private=\"X-User\", no-cache=\"set-cookie\""),
    )]);
    assert_eq!(fields_not_stored(&h), ["x-user", "set-cookie"]);
}

/// A stored response received at t(0) with these headers (Date = t(0) unless given).
fn stored(resp: &[(&str, String)]) -> ObjectMeta {
    let mut pairs: Vec<(&str, String)> = resp.to_vec();
    if !pairs.iter().any(|(n, _)| *n == "date") {
        pairs.push(("date", date(0)));
    }
    let mut m = sample("http://a/x", &[], b"body");
    m.headers = headers(&pairs);
    m.request_time = t(0);
    m.response_time = t(0);
    m
}

#[derive(Debug, PartialEq)]
enum D {
    Fresh,
    StaleOk,
    Swr,
    Reval,
    E504,
}

fn kind(d: &Decision) -> D {
    match d {
        Decision::Fresh { .. } => D::Fresh,
        Decision::StaleAllowed { .. } => D::StaleOk,
        Decision::StaleWhileRevalidate { .. } => D::Swr,
        Decision::Revalidate { .. } => D::Reval,
        Decision::GatewayTimeout => D::E504,
    }
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn reuse_table() {
    use D::*;
    // (request headers, stored response headers, seconds after storing, expected, clause)
    let rows: Vec<(Vec<(&str, String)>, Vec<(&str, String)>, u64, D, &str)> = vec![
        (vec![], vec![("cache-control", s("max-age=60"))], 10, Fresh, "§4.2 fresh"),
        (vec![], vec![("cache-control", s("max-age=60"))], 60, Reval, "§4.2 age == lifetime is stale"),
        (vec![], vec![("cache-control", s("max-age=60"))], 100, Reval, "§4.3 stale: validate"),
        (vec![], vec![("cache-control", s("max-age=60")), ("age", s("50"))], 20, Reval, "§4.2.3 upstream Age counts"),
        (vec![], vec![("cache-control", s("s-maxage=60, max-age=0"))], 10, Fresh, "s-maxage overrides max-age"),
        (vec![], vec![("expires", date(60))], 10, Fresh, "Expires"),
        (vec![], vec![("expires", s("0"))], 0, Reval, "invalid Expires is stale"),
        (vec![], vec![("last-modified", date(-10_000))], 500, Fresh, "heuristic 1000s"),
        (vec![], vec![("last-modified", date(-10_000))], 1500, Reval, "heuristic expired"),
        (vec![], vec![("cache-control", s("max-age=60, no-cache")), ("etag", s("\"a\""))], 1, Reval, "§5.2.2.4 response no-cache: every time"),
        (vec![("cache-control", s("no-cache"))], vec![("cache-control", s("max-age=60"))], 1, Reval, "§5.2.1.4 request no-cache"),
        (vec![("pragma", s("no-cache"))], vec![("cache-control", s("max-age=60"))], 1, Reval, "§5.4 Pragma no-cache"),
        (vec![("cache-control", s("max-age=0"))], vec![("cache-control", s("max-age=60"))], 0, Reval, "§5.2.1.1 request max-age=0"),
        (vec![("cache-control", s("max-age=5"))], vec![("cache-control", s("max-age=60"))], 10, Reval, "request max-age exceeded"),
        (vec![("cache-control", s("max-age=20"))], vec![("cache-control", s("max-age=60"))], 10, Fresh, "request max-age satisfied"),
        (vec![("cache-control", s("min-fresh=30"))], vec![("cache-control", s("max-age=60"))], 40, Reval, "§5.2.1.3 min-fresh unmet"),
        (vec![("cache-control", s("min-fresh=30"))], vec![("cache-control", s("max-age=60"))], 20, Fresh, "min-fresh met"),
        (vec![("cache-control", s("min-fresh=30"))], vec![("cache-control", s("max-age=60"))], 30, Fresh, "§5.2.1.3 fresh for exactly min-fresh: no less than asked"),
        (vec![("cache-control", s("min-fresh=0"))], vec![("cache-control", s("max-age=60"))], 60, Reval, "min-fresh=0 never makes a stale response fresh"),
        (vec![("cache-control", s("max-stale"))], vec![("cache-control", s("max-age=60"))], 1000, StaleOk, "§5.2.1.2 max-stale any"),
        (vec![("cache-control", s("max-stale=50"))], vec![("cache-control", s("max-age=60"))], 100, StaleOk, "max-stale within"),
        (vec![("cache-control", s("max-stale=10"))], vec![("cache-control", s("max-age=60"))], 100, Reval, "max-stale exceeded"),
        (vec![("cache-control", s("max-stale"))], vec![("cache-control", s("max-age=60, must-revalidate"))], 100, Reval, "§5.2.2.2 must-revalidate beats max-stale"),
        (vec![("cache-control", s("max-stale"))], vec![("cache-control", s("max-age=60, proxy-revalidate"))], 100, Reval, "§5.2.2.8 proxy-revalidate"),
        (vec![("cache-control", s("max-stale"))], vec![("cache-control", s("s-maxage=60"))], 100, Reval, "§5.2.2.10 s-maxage implies proxy-revalidate"),
        (vec![], vec![("cache-control", s("max-age=60, stale-while-revalidate=100"))], 100, Swr, "RFC 5861 swr within window"),
        (vec![], vec![("cache-control", s("max-age=60, stale-while-revalidate=10"))], 100, Reval, "swr window passed"),
        (vec![], vec![("cache-control", s("max-age=60, stale-while-revalidate=100, must-revalidate"))], 100, Reval, "must-revalidate beats swr"),
        (vec![("cache-control", s("only-if-cached"))], vec![("cache-control", s("max-age=60"))], 10, Fresh, "§5.2.1.7 only-if-cached, fresh"),
        (vec![("cache-control", s("only-if-cached"))], vec![("cache-control", s("max-age=60"))], 100, E504, "only-if-cached, stale: 504"),
        (vec![("cache-control", s("only-if-cached, max-stale"))], vec![("cache-control", s("max-age=60"))], 100, StaleOk, "only-if-cached + max-stale"),
        (vec![("cache-control", s("only-if-cached"))], vec![("cache-control", s("max-age=60, stale-while-revalidate=100"))], 100, E504, "only-if-cached does not revalidate"),
        (vec![], vec![("cache-control", s("max-age=60, immutable"))], 10, Fresh, "immutable fresh"),
    ];
    for (req, resp, after, expect, clause) in rows {
        let rh = headers(&req);
        let info = RequestInfo { method: &Method::GET, headers: &rh };
        let d = decide(&info, &stored(&resp), t(after));
        assert_eq!(kind(&d), expect, "{clause}: {d:?}");
    }
}

#[test]
fn revalidation_carries_the_stored_validators() {
    let m = stored(&[
        ("cache-control", s("max-age=1")),
        ("etag", s("\"v1\"")),
        ("last-modified", date(-100)),
    ]);
    let rh = HeaderMap::new();
    let info = RequestInfo {
        method: &Method::GET,
        headers: &rh,
    };
    let Decision::Revalidate { conditional, fwd } = decide(&info, &m, t(10)) else {
        panic!("expected revalidation")
    };
    assert_eq!(fwd, super::status::Fwd::Stale);
    assert_eq!(conditional.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(
        conditional.get("if-modified-since").unwrap(),
        date(-100).as_str()
    );
    assert!(
        conditional_headers(&HeaderMap::new()).is_empty(),
        "no validators: unconditional"
    );
}

#[test]
fn revalidation_says_whether_the_client_forced_it() {
    use super::status::Fwd;
    let m = stored(&[("cache-control", s("max-age=60"))]);
    for (req, expect) in [
        ("no-cache", Fwd::Request),
        ("max-age=0", Fwd::Request),
        ("min-fresh=100", Fwd::Request),
    ] {
        let rh = headers(&[("cache-control", s(req))]);
        let info = RequestInfo {
            method: &Method::GET,
            headers: &rh,
        };
        let Decision::Revalidate { fwd, .. } = decide(&info, &m, t(1)) else {
            panic!("{req}: expected revalidation")
        };
        assert_eq!(fwd, expect, "{req}");
    }
    let rh = HeaderMap::new();
    let info = RequestInfo {
        method: &Method::GET,
        headers: &rh,
    };
    assert!(matches!(
        decide(&info, &m, t(100)),
        Decision::Revalidate {
            fwd: Fwd::Stale,
            ..
        }
    ));
}

#[test]
fn fresh_hits_report_their_age() {
    let m = stored(&[("cache-control", s("max-age=60")), ("age", s("5"))]);
    let rh = HeaderMap::new();
    let info = RequestInfo {
        method: &Method::GET,
        headers: &rh,
    };
    assert_eq!(decide(&info, &m, t(10)), Decision::Fresh { age: 15 });
    for age in [0, 15, 999, 1023, 1024, 86_400] {
        assert_eq!(age_header(age), age.to_string().as_str(), "{age}");
    }
    assert_eq!(age_header(u64::MAX), "2147483648");
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn stale_on_error_table() {
    use UpstreamError::*;
    let rows: Vec<(Vec<(&str, String)>, Vec<(&str, String)>, u64, UpstreamError, bool, &str)> = vec![
        (vec![], vec![("cache-control", s("max-age=60, stale-if-error=100"))], 100, Status(500), true, "RFC 5861 stale-if-error"),
        (vec![], vec![("cache-control", s("max-age=60, stale-if-error=10"))], 100, Status(503), false, "window passed"),
        (vec![("cache-control", s("stale-if-error=100"))], vec![("cache-control", s("max-age=60"))], 100, Status(502), true, "request stale-if-error"),
        (vec![], vec![("cache-control", s("max-age=60"))], 100, Status(500), false, "5xx without stale-if-error"),
        (vec![], vec![("cache-control", s("max-age=60"))], 100, Unreachable, true, "§4.2.4 disconnected"),
        (vec![], vec![("cache-control", s("max-age=60"))], 200_000, Unreachable, false, "too stale even when disconnected"),
        (vec![], vec![("cache-control", s("max-age=60, must-revalidate, stale-if-error=100"))], 100, Unreachable, false, "must-revalidate: 504"),
        (vec![], vec![("cache-control", s("s-maxage=60, stale-if-error=100"))], 100, Status(500), false, "s-maxage"),
        (vec![], vec![("cache-control", s("max-age=60, stale-if-error=100"))], 100, Status(404), false, "4xx is not an error here"),
        (vec![("cache-control", s("no-cache"))], vec![("cache-control", s("max-age=60"))], 100, Unreachable, false, "client asked for validation"),
        (vec![("cache-control", s("no-cache, stale-if-error=500"))], vec![("cache-control", s("max-age=60"))], 100, Unreachable, true, "...unless it allows stale on error"),
    ];
    for (req, resp, after, err, expect, clause) in rows {
        let rh = headers(&req);
        let info = RequestInfo { method: &Method::GET, headers: &rh };
        assert_eq!(can_serve_stale_on_error(&info, &Facts::of(&stored(&resp)), t(after), err), expect, "{clause}");
    }
}

#[test]
fn merge_304_table() {
    let old = stored(&[
        ("cache-control", s("max-age=60")),
        ("etag", s("\"v1\"")),
        ("content-length", s("4")),
        ("x-kept", s("1")),
        ("x-replaced", s("old")),
    ]);
    let resp = headers(&[
        ("date", date(100)),
        ("cache-control", s("max-age=120")),
        ("etag", s("\"v1\"")),
        ("content-length", s("0")),
        ("x-replaced", s("new")),
        ("x-added", s("a")),
    ]);
    let m = merge_304(&old, &resp, t(99), t(100)).unwrap();
    // age at t(150): 50 s resident + 1 s response delay (RFC 9111 §4.2.3).
    assert_eq!(
        m.headers.get("cache-control").unwrap(),
        "max-age=120",
        "§3.2 fields replaced"
    );
    assert_eq!(
        m.headers.get("content-length").unwrap(),
        "4",
        "§3.2 Content-Length kept"
    );
    assert_eq!(
        m.headers.get("x-kept").unwrap(),
        "1",
        "unmentioned fields kept"
    );
    assert_eq!(m.headers.get_all("x-replaced").iter().count(), 1);
    assert_eq!(m.headers.get("x-replaced").unwrap(), "new");
    assert_eq!(m.headers.get("x-added").unwrap(), "a");
    assert_eq!(
        (m.request_time, m.response_time),
        (t(99), t(100)),
        "age restarts"
    );
    assert_eq!(m.body_sha256, old.body_sha256, "same body");
    let rh = HeaderMap::new();
    let info = RequestInfo {
        method: &Method::GET,
        headers: &rh,
    };
    assert!(
        matches!(decide(&info, &m, t(150)), Decision::Fresh { age: 51 }),
        "freshened"
    );
    let other = headers(&[("etag", s("\"v2\""))]);
    assert_eq!(
        merge_304(&old, &other, t(0), t(0)),
        Err(Mismatch),
        "§4.3.4 different validator"
    );
    let weak = headers(&[("etag", s("W/\"v1\""))]);
    assert!(
        merge_304(&old, &weak, t(0), t(0)).is_ok(),
        "§4.3.4 a weak validator updates the response it matches weakly"
    );
    let aged = stored(&[("cache-control", s("max-age=10")), ("age", s("30"))]);
    let m = merge_304(&aged, &HeaderMap::new(), t(50), t(50)).unwrap();
    assert!(
        m.headers.get("age").is_none(),
        "an Age-less 304 drops the old Age"
    );
    assert!(
        matches!(decide(&info, &m, t(55)), Decision::Fresh { .. }),
        "freshened despite old Age"
    );
    let m = merge_304(&aged, &headers(&[("age", s("3"))]), t(50), t(50)).unwrap();
    assert_eq!(
        m.headers.get("age").unwrap(),
        "3",
        "the 304's Age replaces it"
    );
    let no_date = merge_304(&old, &HeaderMap::new(), t(50), t(50)).unwrap();
    assert_eq!(
        no_date.headers["date"],
        date(50).as_str(),
        "date-less 304: receipt time"
    );
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn merge_304_selection_table() {
    // (stored ETag, the 304's ETag, selected?)
    let rows: [(Option<&str>, Option<&str>, bool, &str); 9] = [
        (Some("\"a\""), Some("\"a\""), true, "§4.3.4 same strong validator"),
        (Some("\"a\""), Some("\"b\""), false, "different strong validator"),
        (Some("W/\"a\""), Some("\"a\""), false, "§4.3.4 a strong validator never selects a weak one"),
        (Some("W/\"a\""), Some("W/\"a\""), true, "§4.3.4 weak validator matching"),
        (Some("\"a\""), Some("W/\"a\""), true, "weak validator, weak match"),
        (Some("W/\"a\""), Some("W/\"b\""), false, "different weak validator"),
        (None, Some("\"v2\""), false, "§4.3.4 a 304 ETag the stored response lacks selects nothing"),
        (Some("\"a\""), None, true, "no ETag in the 304"),
        (None, None, true, "neither has an ETag"),
    ];
    for (old, new, selected, clause) in rows {
        let mut st = vec![("cache-control", s("max-age=60"))];
        st.extend(old.map(|e| ("etag", s(e))));
        let resp: Vec<(&str, String)> = new.map(|e| ("etag", s(e))).into_iter().collect();
        let got = merge_304(&stored(&st), &headers(&resp), t(1), t(1));
        assert_eq!(got.is_ok(), selected, "{clause}");
    }
    // Without an ETag in the 304, its Last-Modified is the validator that must match.
    // (stored Last-Modified, the 304's, stored ETag, selected?)
    let (l1, l0) = (date(-100), date(-5000));
    let rows: [(Option<&String>, Option<&String>, Option<&str>, bool, &str); 5] = [
        (Some(&l1), Some(&l1), None, true, "§4.3.4 same Last-Modified"),
        (Some(&l1), Some(&l0), None, false, "§4.3.4 another Last-Modified (an older file restored) selects nothing"),
        (Some(&l1), None, None, true, "no validator in the 304"),
        (None, Some(&l0), Some("\"a\""), true, "nothing stored to compare with"),
        (Some(&l1), Some(&l0), Some("\"a\""), false, "a stored ETag does not make up for the 304's other date"),
    ];
    for (old, new, etag, selected, clause) in rows {
        let mut st = vec![("cache-control", s("max-age=60"))];
        st.extend(old.map(|d| ("last-modified", d.clone())));
        st.extend(etag.map(|e| ("etag", s(e))));
        let resp: Vec<(&str, String)> = new.map(|d| ("last-modified", d.clone())).into_iter().collect();
        let got = merge_304(&stored(&st), &headers(&resp), t(1), t(1));
        assert_eq!(got.is_ok(), selected, "{clause}");
    }
}

#[test]
#[rustfmt::skip]
fn other_variants_selected_by_a_304_table() {
    // (another variant's ETag, the 304's ETag, also freshened?)
    let rows: [(Option<&str>, Option<&str>, bool, &str); 7] = [
        (Some("\"a\""), Some("\"a\""), true, "§4.3.4 same strong validator: every such response"),
        (Some("\"b\""), Some("\"a\""), false, "another strong validator"),
        (Some("W/\"a\""), Some("\"a\""), false, "a strong validator never selects a weak one"),
        (Some("W/\"a\""), Some("W/\"a\""), false, "§4.3.4 weak: only the most recent match"),
        (Some("\"a\""), Some("W/\"a\""), false, "weak 304 validator"),
        (None, Some("\"a\""), false, "no stored ETag"),
        (Some("\"a\""), None, false, "§4.3.4 no ETag: Last-Modified or nothing selects one response"),
    ];
    for (stored, new, selected, clause) in rows {
        let st: Vec<(&str, String)> = stored.map(|e| ("etag", s(e))).into_iter().collect();
        let resp: Vec<(&str, String)> = new.map(|e| ("etag", s(e))).into_iter().collect();
        assert_eq!(also_selects(&headers(&resp), &headers(&st)), selected, "{clause}");
    }
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn revalidation_carries_only_the_cache_validators() {
    let cache = headers(&[("if-none-match", s("\"mine\"")), ("if-modified-since", date(-100))]);
    let none = HeaderMap::new();
    let rows: Vec<(Vec<(&str, String)>, &HeaderMap, Vec<(&str, String)>, &str)> = vec![
        (vec![("if-none-match", s("\"v2\""))], &cache, vec![("if-none-match", s("\"mine\"")), ("if-modified-since", date(-100))], "§4.3.1 the client's ETag is replaced"),
        (vec![("if-none-match", s("\"v2\""))], &none, vec![], "§4.3.1 no stored validator: unconditional"),
        (vec![("if-none-match", s("*"))], &none, vec![], "client's star dropped"),
        (vec![("if-modified-since", date(0)), ("if-unmodified-since", date(0)), ("if-match", s("\"x\""))], &none, vec![], "other preconditions dropped"),
        (vec![("range", s("bytes=0-4")), ("if-range", s("\"v1\""))], &none, vec![], "no fragment fetched for the scanner"),
    ];
    for (client, conditional, expect, clause) in rows {
        let mut req = headers(&client);
        req.insert("accept", HeaderValue::from_static("*/*"));
        set_cache_validators(&mut req, conditional);
        let mut want = headers(&expect);
        want.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(req, want, "{clause}");
    }
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn refresh_after_revalidation_table() {
    use NotStorable::{NoStore, Private};
    #[derive(Debug)]
    enum Want { Update(&'static [&'static str]), Keep, Remove(NotStorable) }
    let rows: Vec<(Vec<(&str, String)>, Vec<(&str, String)>, Want, &str)> = vec![
        (vec![], vec![("cache-control", s("max-age=600")), ("set-cookie", s("a=1"))], Want::Update(&["cache-control", "date", "set-cookie"]), "storable: all kept"),
        (vec![], vec![("cache-control", s("private, max-age=600")), ("set-cookie", s("a=1"))], Want::Remove(Private), "§5.2.2.7 became private"),
        (vec![], vec![("cache-control", s("no-store, max-age=600"))], Want::Remove(NoStore), "§5.2.2.5 became no-store"),
        (vec![], vec![("cache-control", s("private=\"Set-Cookie\", max-age=600")), ("set-cookie", s("a=1"))], Want::Update(&["cache-control", "date"]), "§5.2.2.7 qualified private: field not stored"),
        (vec![], vec![("cache-control", s("no-cache=\"x-user\", max-age=600")), ("x-user", s("alice"))], Want::Update(&["cache-control", "date"]), "§5.2.2.4 qualified no-cache: field not stored"),
        (vec![], vec![("cache-control", s("max-age=600")), ("proxy-authentication-info", s("nextnonce=\"n2\""))], Want::Update(&["cache-control", "date"]), "§3.1 a proxy-specific field is not stored"),
        (vec![("cache-control", s("no-store"))], vec![("cache-control", s("max-age=600"))], Want::Keep, "§5.2.1.5 request no-store: stored object untouched"),
        (vec![("authorization", s("Basic x"))], vec![("cache-control", s("max-age=600"))], Want::Keep, "§3.5 authorized request: not stored"),
    ];
    for (req, merged, want, clause) in rows {
        match (refresh(&headers(&req), &stored(&merged)), want) {
            (Refresh::Update(m), Want::Update(names)) => {
                let mut got: Vec<&str> = m.headers.keys().map(|n| n.as_str()).collect();
                got.sort_unstable();
                assert_eq!(got, names, "{clause}");
            }
            (Refresh::Keep, Want::Keep) => {}
            (Refresh::Remove(why), Want::Remove(w)) => assert_eq!(why, w, "{clause}"),
            (got, want) => panic!("{clause}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn head_freshening_table() {
    let old = stored(&[
        ("cache-control", s("max-age=60")),
        ("etag", s("\"v1\"")),
        ("content-length", s("4")),
        ("last-modified", date(-100)),
    ]);
    let rows: Vec<(Vec<(&str, String)>, bool, &str)> = vec![
        (vec![("cache-control", s("max-age=300")), ("etag", s("\"v1\""))], true, "§4.3.5 same validator"),
        (vec![("content-length", s("4"))], true, "same length"),
        (vec![("etag", s("\"v2\""))], false, "new ETag"),
        (vec![("content-length", s("5"))], false, "new length"),
        (vec![("last-modified", date(-10))], false, "new Last-Modified"),
    ];
    for (head, ok, clause) in rows {
        let got = merge_head(&old, &headers(&head), t(10), t(10));
        assert_eq!(got.is_ok(), ok, "{clause}");
    }
    let m = merge_head(&old, &headers(&[("cache-control", s("max-age=300"))]), t(10), t(10)).unwrap();
    assert_eq!(m.headers["cache-control"], "max-age=300");
}

#[test]
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
fn client_conditional_table() {
    let st = headers(&[("etag", s("\"v1\"")), ("last-modified", date(-100))]);
    let rows: Vec<(Vec<(&str, String)>, bool, &str)> = vec![
        (vec![("if-none-match", s("\"v1\""))], true, "matching etag"),
        (vec![("if-none-match", s("\"v0\", \"v1\""))], true, "list"),
        (vec![("if-none-match", s("W/\"v1\""))], true, "weak comparison"),
        (vec![("if-none-match", s("*"))], true, "star"),
        (vec![("if-none-match", s("\"v2\""))], false, "other etag"),
        (vec![("if-none-match", s("\"v2\"")), ("if-modified-since", date(0))], false, "INM wins over IMS"),
        (vec![("if-modified-since", date(0))], true, "not modified since"),
        (vec![("if-modified-since", date(-200))], false, "modified since"),
        (vec![("if-modified-since", s("garbage"))], false, "invalid date"),
        (vec![], false, "unconditional"),
    ];
    for (req, expect, clause) in rows {
        assert_eq!(not_modified(&headers(&req), &st), expect, "{clause}");
    }
    // A stored response without validators still has a Date (the cache records one).
    let bare = headers(&[("date", date(-100))]);
    let rows: Vec<(Vec<(&str, String)>, bool, &str)> = vec![
        (vec![("if-modified-since", date(0))], true, "RFC 9111 §4.3.2 no Last-Modified: the Date"),
        (vec![("if-modified-since", date(-200))], false, "older than the Date"),
        (vec![("if-none-match", s("*"))], true, "RFC 9110 §13.1.2 star: a representation exists"),
        (vec![("if-none-match", s("\"v1\""))], false, "no ETag to match"),
    ];
    for (req, expect, clause) in rows {
        assert_eq!(not_modified(&headers(&req), &bare), expect, "{clause}");
    }
    let h = not_modified_headers(&headers(&[("etag", s("\"v1\"")), ("content-type", s("text/plain"))]));
    assert!(h.contains_key("etag") && !h.contains_key("content-type"));
}
