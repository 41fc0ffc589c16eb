//! CONNECT: a byte tunnel to an allowed port, after the destination guard.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::ProxyError;
use super::listen::ConnSlot;
use super::target::Target;
use super::Proxy;
use crate::body::{self, Body};
use crate::upstream::connect;

/// Opens the upstream connection first (so failures get a proper status), answers 200, then
/// splices bytes both ways once hyper hands over the client connection.
pub async fn connect(proxy: &Proxy, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    let authority = req
        .uri()
        .authority()
        .ok_or(crate::proxy::target::TargetError::BadAuthority)?;
    let target = Target::from_authority(authority)?;
    if !proxy.cfg.connect_ports.contains(&target.port) {
        return Err(ProxyError::ConnectPort(target.port));
    }
    let guard = proxy.upstream.guard();
    let addrs = connect::resolve(&target.host, target.port, Some(guard)).await?;
    let mut upstream = connect::tcp(
        &addrs,
        proxy.upstream.connect_timeout(),
        &target.host_port(),
    )
    .await?;
    // The tunnel keeps its client connection's slot (it counts against
    // proxy.max_connections) and closes when the shutdown grace period ends.
    let slot = req.extensions().get::<ConnSlot>().cloned();
    tokio::spawn(async move {
        let splice = async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(error = %e, target = %target.host_port(), "tunnel ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        };
        match slot {
            Some(mut slot) => {
                tokio::select! {
                    _ = splice => {}
                    _ = slot.aborted() => tracing::debug!("tunnel closed at shutdown"),
                }
            }
            None => splice.await,
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}
