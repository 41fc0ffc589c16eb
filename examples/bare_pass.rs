//! The floor under sluice's pass path: a forward proxy that is nothing but hyper's HTTP/1
//! server and client, built the way sluice uses them (one `http1` server connection per
//! client, one `http1` client connection per upstream, its connection task spawned, the
//! response body streamed back as it comes), with no cache, scanning, routing, guard, pool
//! bookkeeping or header rewriting beyond dropping `Proxy-Connection`.
//!
//! It answers one question for the README's performance section: how fast can any proxy
//! built on hyper's two codecs pass a request through on this machine? Run it in sluice's
//! place in `peers.sh` (it reads the same config file, for `proxy.listen` only):
//!
//! ```sh
//! cargo build --release --example bare_pass
//! SLUICE_BIN=target/release/examples/bare_pass TOKIO_WORKER_THREADS=1 \
//!     ../shared/bench/peers.sh --only sluice,nginx --workloads pass-1k
//! ```
//!
//! Each client connection keeps its own upstream connection (opened on its first request,
//! reopened when the origin closes it), so there is no shared pool at all: lighter than any
//! real proxy, which is what a floor should be. Plain `http://` only; not for real use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

mod floor;
use floor::Error;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

fn main() -> Result<(), Error> {
    floor::run("bare_pass (hyper floor)", serve)
}

async fn serve(listen: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::default();
            let service = hyper::service::service_fn(move |req| pass(req, upstream.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn pass(
    mut req: Request<Incoming>,
    upstream: Arc<Mutex<Option<SendRequest<Incoming>>>>,
) -> Result<Response<Body>, Infallible> {
    let Some(authority) = req.uri().authority().cloned() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    req.headers_mut().remove("proxy-connection");
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let mut slot = upstream.lock().await;
    let ready = match slot.as_mut() {
        Some(tx) => tx.ready().await.is_ok(),
        None => false,
    };
    if !ready {
        let Ok(stream) = TcpStream::connect(authority.as_str()).await else {
            return Ok(status(StatusCode::BAD_GATEWAY));
        };
        let _ = stream.set_nodelay(true);
        let Ok((tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            return Ok(status(StatusCode::BAD_GATEWAY));
        };
        tokio::spawn(conn);
        *slot = Some(tx);
    }
    let Some(tx) = slot.as_mut() else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    match tx.send_request(req).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed_unsync)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() = code;
    resp
}
