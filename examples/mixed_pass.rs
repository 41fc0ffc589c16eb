//! Between the two floors: hyper's HTTP/1 server facing the client, as in `bare_pass`, and a
//! hand-written upstream side as in `raw_pass`: the request future itself writes the head to
//! the upstream socket it owns and reads the response with `httparse`, with no client
//! connection task and no channel between tasks. It shows how much of the gap between
//! `bare_pass` and `raw_pass` is hyper's client half.
//!
//! ```sh
//! cargo build --release --example mixed_pass
//! bench/cpu_per_request.sh sluice target/release/examples/mixed_pass pass-1k
//! ```
//!
//! Content-Length responses only, plain `http://`, no timeouts. Not for real use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

mod floor;
use floor::Error;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Error> {
    floor::run(
        "mixed_pass (hyper server, hand-written upstream floor)",
        serve,
    )
}

async fn serve(listen: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let upstream: Arc<Mutex<Option<Upstream>>> = Arc::default();
            let service = hyper::service::service_fn(move |req| pass(req, upstream.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Upstream {
    authority: String,
    stream: TcpStream,
    buf: BytesMut,
}

async fn pass(
    req: Request<Incoming>,
    upstream: Arc<Mutex<Option<Upstream>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut slot = upstream.lock().await;
    Ok(match exchange(&req, &mut slot).await {
        Ok(resp) => resp,
        Err(_) => {
            *slot = None;
            let mut resp = Response::new(Full::default());
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    })
}

async fn exchange(
    req: &Request<Incoming>,
    slot: &mut Option<Upstream>,
) -> Result<Response<Full<Bytes>>, Error> {
    let authority = req.uri().authority().ok_or("not absolute-form")?.as_str();
    let mut head = BytesMut::with_capacity(512);
    head.put_slice(req.method().as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    head.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if name == "proxy-connection" || name == http::header::CONNECTION {
            continue;
        }
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    head.put_slice(b"\r\n");

    if slot.as_ref().is_none_or(|u| u.authority != authority) {
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let (authority, buf) = (authority.to_owned(), BytesMut::with_capacity(8192));
        *slot = Some(Upstream {
            authority,
            stream,
            buf,
        });
    }
    let up = slot.as_mut().ok_or("no upstream")?;
    up.stream.write_all(&head).await?;

    let mut builder = Response::builder();
    let (len, body_len) = loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&up.buf)? {
            httparse::Status::Complete(len) => {
                builder = builder.status(resp.code.ok_or("no status")?);
                let mut body_len = None;
                for f in resp.headers.iter() {
                    if f.name.eq_ignore_ascii_case("content-length") {
                        body_len = Some(std::str::from_utf8(f.value)?.trim().parse::<usize>()?);
                    } else if !f.name.eq_ignore_ascii_case("connection") {
                        builder = builder.header(f.name, f.value);
                    }
                }
                break (len, body_len.ok_or("no Content-Length")?);
            }
            httparse::Status::Partial => {
                if up.stream.read_buf(&mut up.buf).await? == 0 {
                    return Err("origin closed".into());
                }
            }
        }
    };
    while up.buf.len() < len + body_len {
        if up.stream.read_buf(&mut up.buf).await? == 0 {
            return Err("origin closed mid-body".into());
        }
    }
    let mut response = up.buf.split_to(len + body_len);
    let body = response.split_off(len).freeze();
    Ok(builder.body(Full::new(body))?)
}
