//! A second floor under sluice's pass path, below `bare_pass`: a forward proxy made of tokio
//! sockets and `httparse` only, with no HTTP library around them. Each client connection is
//! one task that owns its upstream connection; a request head is parsed in place, rewritten
//! to origin form and written upstream, and the response head and body go back to the client
//! in one `write`. No header map, no body type, no second task, no channel between tasks.
//!
//! It answers the question `bare_pass` leaves open: how much of hyper's share could a
//! hand-written HTTP/1 engine save on this machine? Run it in sluice's place:
//!
//! ```sh
//! cargo build --release --example raw_pass
//! bench/cpu_per_request.sh sluice target/release/examples/raw_pass pass-1k
//! ```
//!
//! It is deliberately incomplete, which is what a floor should be: GET/HEAD-style requests
//! without a body, `Content-Length` responses only (anything else ends the connection),
//! plain `http://`, no timeouts, no limits beyond a 64 KiB head. Not for real use.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod floor;
use floor::Error;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MAX_HEAD: usize = 64 * 1024;

fn main() -> Result<(), Error> {
    floor::run("raw_pass (tokio + httparse floor)", serve)
}

async fn serve(listen: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = client(stream).await;
        });
    }
}

/// The upstream connection a client connection keeps, with the authority it reaches.
struct Upstream {
    authority: String,
    stream: TcpStream,
    buf: BytesMut,
}

async fn client(mut stream: TcpStream) -> Result<(), Error> {
    let mut buf = BytesMut::with_capacity(8192);
    let mut upstream: Option<Upstream> = None;
    let mut head = Vec::with_capacity(1024);
    loop {
        // The request head, parsed where it lies in the buffer.
        let (len, authority) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut fields);
            match req.parse(&buf)? {
                httparse::Status::Complete(len) => {
                    let target = req.path.ok_or("no target")?;
                    let rest = target.strip_prefix("http://").ok_or("not absolute-form")?;
                    let slash = rest.find('/').unwrap_or(rest.len());
                    let (authority, path) = rest.split_at(slash);
                    head.clear();
                    head.extend_from_slice(req.method.ok_or("no method")?.as_bytes());
                    head.push(b' ');
                    head.extend_from_slice(if path.is_empty() {
                        b"/"
                    } else {
                        path.as_bytes()
                    });
                    head.extend_from_slice(b" HTTP/1.1\r\n");
                    for f in req.headers.iter() {
                        if f.name.eq_ignore_ascii_case("proxy-connection")
                            || f.name.eq_ignore_ascii_case("connection")
                        {
                            continue;
                        }
                        head.extend_from_slice(f.name.as_bytes());
                        head.extend_from_slice(b": ");
                        head.extend_from_slice(f.value);
                        head.extend_from_slice(b"\r\n");
                    }
                    head.extend_from_slice(b"\r\n");
                    break (len, authority.to_owned());
                }
                httparse::Status::Partial if buf.len() < MAX_HEAD => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                httparse::Status::Partial => return Err("head too large".into()),
            }
        };
        buf.advance(len);

        if upstream.as_ref().is_none_or(|u| u.authority != authority) {
            let stream = TcpStream::connect(authority.as_str()).await?;
            stream.set_nodelay(true)?;
            let buf = BytesMut::with_capacity(8192);
            upstream = Some(Upstream {
                authority,
                stream,
                buf,
            });
        }
        let up = upstream.as_mut().ok_or("no upstream")?;
        up.stream.write_all(&head).await?;

        // The response head, then exactly Content-Length bytes of body.
        let (len, body_len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut fields);
            match resp.parse(&up.buf)? {
                httparse::Status::Complete(len) => {
                    let cl = resp
                        .headers
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                        .ok_or("no Content-Length")?;
                    let n: usize = std::str::from_utf8(cl.value)?.trim().parse()?;
                    break (len, n);
                }
                httparse::Status::Partial if up.buf.len() < MAX_HEAD => {
                    if up.stream.read_buf(&mut up.buf).await? == 0 {
                        return Err("origin closed".into());
                    }
                }
                httparse::Status::Partial => return Err("response head too large".into()),
            }
        };
        while up.buf.len() < len + body_len {
            if up.stream.read_buf(&mut up.buf).await? == 0 {
                return Err("origin closed mid-body".into());
            }
        }
        let response = up.buf.split_to(len + body_len);
        stream.write_all(&response).await?;
    }
}
