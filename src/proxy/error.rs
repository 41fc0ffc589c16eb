//! The one place where errors become responses: status, `Proxy-Status` (RFC 9209), body.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::proxy::target::TargetError;
use crate::upstream;

/// Everything that can end a proxied request early.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Target(#[from] TargetError),
    #[error("client {0} is not allowed to use this proxy")]
    ClientDenied(std::net::IpAddr),
    #[error("CONNECT to port {0} is not allowed")]
    ConnectPort(u16),
    #[error("the request line is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("{0}")]
    Host(&'static str),
    #[error("TRACE is not forwarded by this proxy")]
    TraceRefused,
    #[error("the object is not in the cache and the request said only-if-cached")]
    OnlyIfCached,
    #[error("forwarding loop: the request has been through this proxy before (its Via names it)")]
    Loop,
    #[error("{0}")]
    Upstream(#[from] upstream::Error),
}

impl ProxyError {
    /// Status code and RFC 9209 error type.
    pub fn status(&self) -> (StatusCode, &'static str) {
        use upstream::Error as U;
        match self {
            ProxyError::Target(_) => (StatusCode::BAD_REQUEST, "http_request_error"),
            ProxyError::ClientDenied(_) => (StatusCode::FORBIDDEN, "http_request_denied"),
            ProxyError::ConnectPort(_) => (StatusCode::FORBIDDEN, "http_request_denied"),
            ProxyError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "http_request_error"),
            ProxyError::Host(_) => (StatusCode::BAD_REQUEST, "http_request_error"),
            ProxyError::TraceRefused => (StatusCode::METHOD_NOT_ALLOWED, "http_request_denied"),
            ProxyError::OnlyIfCached => (StatusCode::GATEWAY_TIMEOUT, "proxy_internal_response"),
            ProxyError::Loop => (StatusCode::BAD_GATEWAY, "proxy_loop_detected"),
            ProxyError::Upstream(e) => match e {
                U::Dns(..) => (StatusCode::BAD_GATEWAY, "dns_error"),
                U::DnsTimeout(..) => (StatusCode::GATEWAY_TIMEOUT, "dns_timeout"),
                U::Guard { .. } => (StatusCode::FORBIDDEN, "destination_ip_prohibited"),
                U::Refused(..) => (StatusCode::BAD_GATEWAY, "connection_refused"),
                U::ConnectTimeout(..) | U::TlsTimeout(..) => {
                    (StatusCode::GATEWAY_TIMEOUT, "connection_timeout")
                }
                U::Tls(..) => (StatusCode::BAD_GATEWAY, "tls_protocol_error"),
                U::TlsCertificate(..) => (StatusCode::BAD_GATEWAY, "tls_certificate_error"),
                // The parent's refusal of a tunnel, told the way its refusal of an
                // `http://` request would be relayed: its 403 (policy) and 5xx stand;
                // other codes concern sluice's own CONNECT (407: sluice has no
                // credentials for it), not the client's request, so they become a 502.
                U::Parent { status: 403, .. } => (StatusCode::FORBIDDEN, "http_request_denied"),
                U::Parent { status: 407, .. } => {
                    (StatusCode::BAD_GATEWAY, "proxy_configuration_error")
                }
                U::Parent { status, .. } => match StatusCode::from_u16(*status) {
                    Ok(s) if s.is_server_error() => (s, "destination_unavailable"),
                    _ => (StatusCode::BAD_GATEWAY, "destination_unavailable"),
                },
                U::ResponseTimeout(..) => (StatusCode::GATEWAY_TIMEOUT, "http_response_timeout"),
                U::HeadTooLarge(..) => {
                    (StatusCode::BAD_GATEWAY, "http_response_header_section_size")
                }
                U::Closed(..) => (StatusCode::BAD_GATEWAY, "http_response_incomplete"),
                U::BodyTimeout(..) => (StatusCode::GATEWAY_TIMEOUT, "http_response_timeout"),
                U::Protocol(..) => (StatusCode::BAD_GATEWAY, "http_protocol_error"),
                U::RequestBody(..) => (StatusCode::BAD_REQUEST, "http_request_error"),
                U::RequestTrailers(..) => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "http_request_error",
                ),
            },
        }
    }

    /// The response the client gets: status, `Proxy-Status`, and a one-sentence text body.
    pub fn into_response(self) -> Response<Body> {
        let (status, kind) = self.status();
        let text = self.to_string();
        let mut resp = Response::new(body::full(format!("{text}\n")));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let mut ps = proxy_status(kind, &text);
        if let ProxyError::Upstream(e) = &self {
            if let Some(s) = e.received_status() {
                // RFC 9209 §2.1.4: the status sluice received from the next hop.
                ps.push_str(&format!("; received-status={s}"));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&ps) {
            h.insert("proxy-status", v);
        }
        if matches!(
            self,
            ProxyError::Host(_)
                | ProxyError::Upstream(
                    upstream::Error::RequestBody(_) | upstream::Error::RequestTrailers(_)
                )
        ) {
            // The request's framing (or, for Host, which request this is) can no longer be
            // trusted: no further request on it.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, ProxyError::TraceRefused) {
            h.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT"),
            );
        }
        resp
    }
}

/// `sluice; error=<kind>; details="<text>"` with the text as a valid sf-string.
pub fn proxy_status(kind: &str, details: &str) -> String {
    let escaped: String = details
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("sluice; error={kind}; details=\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_status_details_are_escaped() {
        assert_eq!(
            proxy_status("dns_error", "a \"b\" \\ c\u{7}é"),
            "sluice; error=dns_error; details=\"a \\\"b\\\" \\\\ c\""
        );
    }

    #[test]
    fn upstream_errors_map_to_gateway_statuses() {
        let e = ProxyError::from(upstream::Error::ConnectTimeout("h:1".into()));
        assert_eq!(
            e.status(),
            (StatusCode::GATEWAY_TIMEOUT, "connection_timeout")
        );
        let e = ProxyError::from(upstream::Error::DnsTimeout("h".into()));
        assert_eq!(e.status(), (StatusCode::GATEWAY_TIMEOUT, "dns_timeout"));
        assert_eq!(
            ProxyError::Loop.status(),
            (StatusCode::BAD_GATEWAY, "proxy_loop_detected")
        );
        let e = ProxyError::from(upstream::Error::Refused("h:1".into(), "x".into()));
        assert_eq!(e.status().0, StatusCode::BAD_GATEWAY);
        let resp = e.into_response();
        assert!(resp.headers()["proxy-status"]
            .to_str()
            .unwrap()
            .starts_with("sluice; error=connection_refused"));
    }

    #[test]
    fn a_parents_refusal_of_a_tunnel_keeps_its_403_and_5xx_and_names_it() {
        let parent = |status| {
            ProxyError::from(upstream::Error::Parent {
                parent: "p:3128".into(),
                status,
                reason: "Why".into(),
            })
        };
        for (status, want, kind) in [
            (403, 403, "http_request_denied"),
            (407, 502, "proxy_configuration_error"),
            (503, 503, "destination_unavailable"),
            (504, 504, "destination_unavailable"),
            (400, 502, "destination_unavailable"),
            (302, 502, "destination_unavailable"),
            (101, 502, "destination_unavailable"),
        ] {
            let e = parent(status);
            assert_eq!(e.status(), (StatusCode::from_u16(want).unwrap(), kind));
            let resp = e.into_response();
            let ps = resp.headers()["proxy-status"].to_str().unwrap().to_string();
            assert!(
                ps.starts_with(&format!(
                    "sluice; error={kind}; details=\"parent proxy p:3128"
                )) && ps.ends_with(&format!("; received-status={status}")),
                "{ps}"
            );
        }
    }
}
