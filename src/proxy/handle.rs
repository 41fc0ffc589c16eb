//! One proxied request, as a sequence of phases: target → request filter → upstream → response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use super::cached::{self, Head};
use super::conn::{AccessLog, ConnState, Unanswered};
use super::error::ProxyError;
use super::fetch::{self, Exchange};
use super::headers::{
    add_via, max_forwards, response_hop, strip_hop_by_hop, whole_body_only, Order, ViaName,
};
use super::target::Target;
use super::upload;
use super::{tunnel, Proxy};
use crate::body::{self, Body};
use crate::cache::invalidate::invalidations;
use crate::cache::key::CacheKey;
use crate::cache::status::{CacheStatus, Fwd};

/// Handles one request from a client connection; never fails (errors become responses).
pub async fn handle(
    proxy: Arc<Proxy>,
    state: Arc<ConnState>,
    client: SocketAddr,
    allowed: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let log = AccessLog {
        client: client.ip(),
        method: req.method().clone(),
        ..AccessLog::default()
    };
    let mut pending = Unanswered::new(log, state.clone());
    let log = pending.log();
    // `forward` logs the normalised URL; anything else logs the target as received.
    let uri = req.uri().clone();
    let connect = req.method() == Method::CONNECT;
    let has_body = !req.body().is_end_stream();
    let resp = if !allowed {
        Err(ProxyError::ClientDenied(client.ip()))
    } else if let Err(why) = host_field_ok(req.version(), req.headers(), req.uri().authority()) {
        Err(ProxyError::Host(why))
    } else if proxy.upstream.via.seen_in(req.headers()) {
        Err(ProxyError::Loop)
    } else if let Some(limit) = request_line_too_long(&proxy, &req) {
        // Before the target is looked at, for CONNECT too (its authority-form target was
        // once unchecked: a 403 or a DNS failure instead of the 414 the limit promises).
        Err(ProxyError::UriTooLong(limit))
    } else if connect {
        // Named now: a client that leaves while the tunnel opens is logged with its target.
        log.url = uri.to_string();
        Box::pin(tunnel::connect(&proxy, req)).await
    } else {
        forward(&proxy, req, log).await
    };
    let mut resp = resp.unwrap_or_else(|e| {
        let mut resp = e.into_response();
        if has_body {
            // Refused before (or while) its body was read: hyper then closes rather than
            // read the rest, and the answer says so (RFC 9110 §10.1.1), so a client that
            // sent `Expect: 100-continue` does not send the body on a connection that ends.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            // The client may still be sending it: the close lingers (`conn::TrackedIo`).
            state.body_left_unread();
        }
        resp
    });
    if connect && resp.status().is_success() {
        // The tunnel's half-close must not linger (`conn::TrackedIo`).
        state.tunnel_opened();
    } else if connect {
        // A refused CONNECT ends the connection: the head check stops at a CONNECT head (what
        // follows a tunnel is not HTTP), so nothing after it may be read as requests.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if log.url.is_empty() {
        log.url = uri.to_string();
    }
    log.status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body::boxed(pending.answer(body));
    Ok(Response::from_parts(parts, body))
}

/// A plain (non-CONNECT) request: absolute-form target, forwarded upstream.
async fn forward(
    proxy: &Arc<Proxy>,
    req: Request<Incoming>,
    log: &mut AccessLog,
) -> Result<Response<Body>, ProxyError> {
    let target = Target::from_uri(req.uri())?;
    let url = target.url();
    log.url.clone_from(&url);
    if let Some(resp) = answer_locally(&req) {
        return resp;
    }
    let (mut parts, incoming) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, Order::Kept);
    // Host before the cache phase: `Vary: Host` must key on the Host the origin sees.
    set_host(&mut parts.headers, &target);
    let mut key = CacheKey::parse(&url).ok();
    // A GET or HEAD with a body (rare, but legal) is forwarded as is, past the cache.
    if matches!(parts.method, Method::GET | Method::HEAD) && incoming.is_end_stream() {
        if let Some(key) = key.take() {
            let head = Head {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                extensions: parts.extensions,
            };
            return cached::serve(proxy, head, &target, key, log).await;
        }
    }
    // Boxed, like every path that goes upstream: the request future is as large as its
    // largest state, and hyper moves it per request, so a hit must not carry an upstream
    // exchange's state inline.
    add_upstream_fields(&mut parts.headers, &proxy.upstream.via, parts.version);
    parts.version = Version::HTTP_11;
    if parts.method == Method::GET {
        // As on the cache path, for a GET that carries a (legal, empty) body.
        whole_body_only(&mut parts.headers);
    }
    Box::pin(uncached(proxy, parts, incoming, &target, &url, key, log)).await
}

/// A request that is never served from or stored in the cache: its body is streamed
/// upstream and a non-error answer to an unsafe method invalidates (RFC 9111 §4.4).
async fn uncached(
    proxy: &Arc<Proxy>,
    parts: http::request::Parts,
    incoming: Incoming,
    target: &Target,
    url: &str,
    key: Option<CacheKey>,
    log: &mut AccessLog,
) -> Result<Response<Body>, ProxyError> {
    let method = parts.method.clone();
    let out = Request::from_parts(
        parts,
        upstream_body(incoming, proxy.cfg.max_trailer_size.as_usize()),
    );
    // Other requests stream their body upstream and are never stored.
    let req_headers = out.headers().clone();
    let request_time = SystemTime::now();
    let fetched = proxy.upstream.send(out, target).await?;
    log.upstream_ms = Some(fetched.elapsed.as_millis());
    let resp = downstream_response(fetched.response);
    if let Some(key) = &key {
        // RFC 9111 §4.4: a non-error response to an unsafe method invalidates.
        let keys = invalidations(&method, resp.status().as_u16(), key, resp.headers());
        if !keys.is_empty() {
            // One store job for all of them: it finishes even if hyper drops this future
            // because the client hung up, and shutdown waits for it.
            if let Err(e) = proxy.cache.invalidate(keys).await {
                tracing::warn!(error = %e, "cache invalidation failed");
            }
        }
    }
    let x = Exchange {
        method: &method,
        req_headers: &req_headers,
        url,
        key: None,
        request_time,
        response_time: SystemTime::now(),
    };
    fetch::respond(
        proxy,
        resp,
        &x,
        CacheStatus::forward(Fwd::Method),
        log,
        fetch::Followers::default(),
    )
    .await
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`, and no request more than one;
/// its value is empty or a `host[:port]`. The value is never used to route (the absolute URL
/// is, §3.2.2), but two or a malformed one are what request smuggling through a chain of
/// proxies is made of, so the request is refused rather than repaired.
/// `target` is the request target's authority, already parsed: a `Host` equal to it (the
/// usual case) is not parsed again.
fn host_field_ok(
    version: Version,
    headers: &HeaderMap,
    target: Option<&http::uri::Authority>,
) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err("the request has more than one Host field"),
        (None, _) if version >= Version::HTTP_11 => {
            Err("the request has no Host field, which HTTP/1.1 requires")
        }
        (None, _) => Ok(()),
        (Some(v), None) => {
            let v = v.as_bytes();
            // `Authority` takes userinfo and leaves the port unchecked: check both here.
            let host_port = |a: &http::uri::Authority| {
                let host = super::target::authority_host(a);
                !host.is_empty() && super::target::port_after(a.as_str(), host).is_ok()
            };
            let valid = v.is_empty()
                || (!v.contains(&b'@')
                    && match target {
                        Some(a) if a.as_str().as_bytes() == v => host_port(a),
                        _ => http::uri::Authority::try_from(v).is_ok_and(|a| host_port(&a)),
                    });
            if valid {
                Ok(())
            } else {
                Err("the Host field is not a host[:port]")
            }
        }
    }
}

/// `proxy.max_request_line` when the request line (method, target, version) is longer.
fn request_line_too_long(proxy: &Proxy, req: &Request<Incoming>) -> Option<usize> {
    let limit = proxy.cfg.max_request_line.as_usize();
    (uri_len(req.uri()) + req.method().as_str().len() + 10 > limit).then_some(limit)
}

/// The length of a request target as written on the request line, without formatting it.
fn uri_len(uri: &http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// TRACE is refused, and OPTIONS with `Max-Forwards: 0` is answered by the proxy itself
/// (RFC 9110 §7.6.2).
fn answer_locally(req: &Request<Incoming>) -> Option<Result<Response<Body>, ProxyError>> {
    if req.method() == Method::TRACE {
        return Some(Err(ProxyError::TraceRefused));
    }
    if req.method() == Method::OPTIONS && max_forwards(req.headers()) == Some(0) {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT"),
        );
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return Some(Ok(resp));
    }
    None
}

/// `Host` from the target (RFC 9112 §3.2.2), whatever the client sent; left alone when it is
/// already exactly the target's authority.
pub fn set_host(headers: &mut HeaderMap, target: &Target) {
    if headers
        .get(header::HOST)
        .is_some_and(|h| target.is_authority(h.as_bytes()))
    {
        return;
    }
    if let Ok(host) = HeaderValue::try_from(target.authority()) {
        headers.insert(header::HOST, host);
    }
}

/// The fields this hop adds to a request it sends upstream (hop-by-hop fields already
/// stripped, `Host` already set): `Via`, and `Max-Forwards` decremented. The cache phase adds
/// them only when it goes upstream: a hit never needs them.
pub fn add_upstream_fields(headers: &mut HeaderMap, via: &ViaName, received: Version) {
    add_via(headers, via.request_hop(received));
    if let Some(n) = max_forwards(headers) {
        headers.insert(header::MAX_FORWARDS, HeaderValue::from(n.saturating_sub(1)));
    }
}

/// The request body as sent upstream: streamed through, its trailers at most `max_trailers`
/// bytes.
fn upstream_body(incoming: Incoming, max_trailers: usize) -> Body {
    if incoming.is_end_stream() {
        body::boxed(incoming)
    } else {
        body::boxed(upload::limit_trailers(incoming, max_trailers))
    }
}

/// An upstream response as sent to the client (and stored, and merged after a 304):
/// hop-by-hop fields removed, `Via` added, and any `X-Sluice-Verdict` dropped: only sluice
/// speaks it, so an origin's own (forged) one is never relayed or stored, whatever the mode
/// or action.
pub fn downstream_response(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let received = parts.version;
    strip_hop_by_hop(&mut parts.headers, Order::Any);
    parts.headers.remove(super::respond::VERDICT_HEADER);
    add_via(&mut parts.headers, response_hop(received));
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_field_table() {
        for (version, hosts, ok) in [
            (Version::HTTP_11, &["example.com"][..], true),
            (Version::HTTP_11, &["example.com:8080"], true),
            (Version::HTTP_11, &["[::1]:8080"], true),
            (Version::HTTP_11, &[""], true),
            (Version::HTTP_11, &[], false),
            (Version::HTTP_10, &[], true),
            (Version::HTTP_10, &["a", "a"], false),
            (Version::HTTP_11, &["a", "b"], false),
            (Version::HTTP_11, &["user@example.com"], false),
            (Version::HTTP_11, &["a b"], false),
            (Version::HTTP_11, &["example.com/x"], false),
            (Version::HTTP_11, &["example.com:port"], false),
            (Version::HTTP_11, &["example.com:99999"], false),
            (Version::HTTP_11, &["example.com:"], true),
            (Version::HTTP_11, &["example.com:+8080"], false),
            (Version::HTTP_11, &["[::1]x"], false),
            (Version::HTTP_11, &[":80"], false),
        ] {
            let mut h = HeaderMap::new();
            for v in hosts {
                h.append(header::HOST, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                host_field_ok(version, &h, None).is_ok(),
                ok,
                "{version:?} {hosts:?}"
            );
            // The same verdict when the target's authority is the same text, as in
            // `GET http://example.com:99999/ HTTP/1.1` with `Host: example.com:99999`.
            if let [one] = hosts {
                if let Ok(a) = http::uri::Authority::try_from(*one) {
                    assert_eq!(
                        host_field_ok(version, &h, Some(&a)).is_ok(),
                        ok,
                        "{version:?} {hosts:?} as the target too"
                    );
                }
            }
        }
    }
}
