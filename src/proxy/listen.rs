//! The proxy listener: accept, client ACL, connection cap, HTTP/1.1 connections with
//! keep-alive and pipelining, header and idle timeouts, graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::conn::{AccessLog, Check, ConnState, TrackedIo};
use super::{handle, Proxy};

/// Accepts clients until `shutdown` turns true, then waits for open connections to finish
/// their in-flight requests (bounded by `proxy.shutdown_grace`).
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(proxy.cfg.max_connections));
    let (closing_tx, closing_rx) = watch::channel(Phase::Serving);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let proxy = proxy.clone();
        let slot = ConnSlot {
            _permit: Arc::new(permit),
            phase: closing_rx.clone(),
        };
        tokio::spawn(serve_conn(stream, peer, proxy, slot));
    }
    drop(listener);
    let _ = closing_tx.send(Phase::Closing);
    let grace = proxy.cfg.shutdown_grace;
    let all = u32::try_from(proxy.cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
        let _ = closing_tx.send(Phase::Abort);
        let _ = tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(all)).await;
    }
}

/// What lives as long as a client connection, including a CONNECT tunnel that outlives
/// hyper's connection: its `proxy.max_connections` slot and the shutdown phase. Handed to
/// CONNECT requests in their extensions.
#[derive(Clone)]
pub struct ConnSlot {
    _permit: Arc<OwnedSemaphorePermit>,
    phase: watch::Receiver<Phase>,
}

impl ConnSlot {
    /// Resolves when the shutdown grace period is over (or the listener is gone): whatever
    /// still holds the slot must close now.
    pub async fn aborted(&mut self) {
        let _ = self.phase.wait_for(|p| *p == Phase::Abort).await;
    }
}

/// Where shutdown is, as seen by each open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Finish the request in flight, then close.
    Closing,
    /// The grace period is over: close now.
    Abort,
}

/// Over `proxy.max_connections`: a short 503 and close, without reading the request.
async fn refuse(mut stream: TcpStream) {
    let body = "sluice: too many connections, try again later\n";
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nProxy-Status: sluice; error=connection_limit_reached\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(msg.as_bytes())).await;
}

/// The status hyper answered a request head it refused with (and then closed), as its
/// `on_error` picks it; `None` when the error was not a refused head (a request body or IO
/// error ends a request the handler logs; an HTTP/2 preface gets no answer).
fn refused_head_status(e: &hyper::Error) -> Option<u16> {
    if !e.is_parse() || e.is_parse_version_h2() {
        return None;
    }
    Some(if !e.is_parse_too_large() {
        400
    } else if e.to_string().contains("URI too long") {
        414
    } else {
        431
    })
}

/// Whether `proxy.clients` admits `ip`. An IPv4 client is the same client whether a
/// dual-stack listener shows it as `a.b.c.d` or as `::ffff:a.b.c.d`, and is matched in both
/// forms, as Squid does: `10.0.0.0/8` and `::ffff:10.0.0.0/104` admit the same clients.
fn client_allowed(clients: &[IpNet], ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match v4 {
        Some(v4) => {
            let (plain, mapped) = (IpAddr::V4(v4), IpAddr::V6(v4.to_ipv6_mapped()));
            clients
                .iter()
                .any(|n| n.contains(&plain) || n.contains(&mapped))
        }
        None => clients.iter().any(|n| n.contains(&ip)),
    }
}

async fn serve_conn(stream: TcpStream, peer: SocketAddr, proxy: Arc<Proxy>, slot: ConnSlot) {
    let mut closing = slot.phase.clone();
    let mut abort = slot.phase.clone();
    let _ = stream.set_nodelay(true);
    let allowed = client_allowed(&proxy.cfg.clients, peer.ip());
    let state = ConnState::new(proxy.metrics.clone());
    let io = TokioIo::new(TrackedIo::new(stream, state.clone()));
    let svc = {
        let (proxy, state) = (proxy.clone(), state.clone());
        service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            // Only a CONNECT tunnel outlives its request and needs the connection's slot.
            if req.method() == http::Method::CONNECT {
                req.extensions_mut().insert(slot.clone());
            }
            handle::handle(proxy.clone(), state.clone(), peer, allowed, req)
        })
    };
    // No `pipeline_flush`: with it, hyper never flushes its automatic 400/414/431 answers
    // to a malformed or oversized head before closing, so the client just sees a close.
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Records the client's field-name case, which the upstream request keeps. Responses
        // carry no case record (the upstream client keeps none) and go out lowercase, as
        // HTTP/2 writes all names; see ARCHITECTURE.md for the cost of the alternatives.
        .preserve_header_case(true)
        // hyper's buffer cannot be under 8 KiB; `max_header_size` holds the exact limit.
        .max_buf_size(proxy.cfg.max_header_size.as_usize().max(8192))
        .max_header_size(proxy.cfg.max_header_size.as_usize())
        .max_headers(proxy.cfg.max_headers)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let (header_timeout, idle_timeout) = (proxy.cfg.header_timeout, proxy.cfg.idle_timeout);
    let mut shutting_down = false;
    loop {
        let wait = match state.check(header_timeout, idle_timeout) {
            Check::Wait(d) => d,
            Check::HeaderTimeout => {
                tracing::debug!(client = %peer, "request head not complete in time; closing");
                AccessLog::refused_head(peer.ip(), 408, &state);
                return;
            }
            Check::SendStalled => {
                tracing::debug!(client = %peer, "client took no response bytes in time; closing");
                state.cut();
                return;
            }
            Check::Idle => {
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
                header_timeout
            }
        };
        tokio::select! {
            // The connection first: a request that arrived as the idle deadline passed is
            // read (and so counted as activity) before the check that would close it.
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(client = %peer, error = %e, "client connection ended");
                    if let Some(status) = refused_head_status(&e) {
                        AccessLog::refused_head(peer.ip(), status, &state);
                    }
                }
                return;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = closing.wait_for(|p| *p != Phase::Serving), if !shutting_down => {
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            _ = abort.wait_for(|p| *p == Phase::Abort) => {
                tracing::debug!(client = %peer, "closed at the end of the shutdown grace period");
                state.cut_in_flight();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_acl_table() {
        let nets =
            |list: &[&str]| -> Vec<IpNet> { list.iter().map(|n| n.parse().unwrap()).collect() };
        for (clients, ip, allowed) in [
            (&["10.0.0.0/8"][..], "10.1.2.3", true),
            (&["10.0.0.0/8"], "::ffff:10.1.2.3", true),
            (&["10.0.0.0/8"], "11.1.2.3", false),
            (&["10.0.0.0/8"], "::ffff:11.1.2.3", false),
            (&["::ffff:10.0.0.0/104"], "10.1.2.3", true),
            (&["::ffff:10.0.0.0/104"], "::ffff:10.1.2.3", true),
            (&["::ffff:10.0.0.0/104"], "::ffff:11.1.2.3", false),
            (&["::ffff:0:0/96"], "192.0.2.1", true),
            (&["::1/128"], "::1", true),
            (&["::1/128"], "127.0.0.1", false),
            (&["127.0.0.0/8"], "::1", false),
            (&["2001:db8::/32"], "2001:db8::1", true),
            (&["2001:db8::/32"], "10.1.2.3", false),
            // Not IPv4-mapped: `::a.b.c.d` (deprecated IPv4-compatible) is an IPv6 address.
            (&["10.0.0.0/8"], "::10.1.2.3", false),
            (&[], "127.0.0.1", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                client_allowed(&nets(clients), ip),
                allowed,
                "{clients:?} {ip}"
            );
        }
    }
}
