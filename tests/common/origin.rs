//! Raw origins (and raw parent proxies): TCP servers on 127.0.0.1 whose every byte is
//! scripted by the test. They count accepted connections and record each request head
//! and body they read, so a test can prove what crossed the proxy and on which connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::wire::{request_framing, Head, Wire, WireError};

/// Any byte stream an origin can serve on (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A request as the origin received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Which accepted connection (0-based, in accept order) it arrived on.
    pub conn: usize,
    pub head: Head,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
}

impl Request {
    /// The method.
    pub fn method(&self) -> &str {
        &self.head.start[0]
    }
    /// The request-target exactly as received (origin-form or absolute-form).
    pub fn target(&self) -> &str {
        &self.head.start[1]
    }
    /// The protocol version on the request line.
    pub fn version(&self) -> &str {
        &self.head.start[2]
    }
    /// The first value of a header field.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// Whether both `Content-Length` and `Transfer-Encoding` arrived (a smuggling vector).
    pub fn has_both_lengths(&self) -> bool {
        self.head.has("content-length") && self.head.has("transfer-encoding")
    }
}

#[derive(Default)]
struct Record {
    accepted: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    /// The accept loop and every connection task, aborted by [`Origin::stop`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Record {
    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// One accepted connection, handed to the origin's script.
pub struct Conn {
    /// 0-based accept order of this connection.
    pub index: usize,
    wire: Wire<Box<dyn Io>>,
    record: Arc<Record>,
}

impl Conn {
    /// Reads the next request (head and body) and records it. `None` when the peer closed
    /// or sent something unreadable.
    pub async fn read_request(&mut self) -> Option<Request> {
        let head = match self.wire.read_head().await {
            Ok(h) => h,
            Err(WireError::Closed) => return None,
            Err(_) => return None,
        };
        let framing = request_framing(&head).ok()?;
        let body = self.wire.read_body(framing).await.ok()?;
        let req = Request {
            conn: self.index,
            head,
            body,
        };
        self.record
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.clone());
        Some(req)
    }

    /// Reads only a request head (the body, if any, is left unread), and records it.
    pub async fn read_head(&mut self) -> Option<Head> {
        let head = self.wire.read_head().await.ok()?;
        self.record
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Request {
                conn: self.index,
                head: head.clone(),
                body: Vec::new(),
            });
        Some(head)
    }

    /// Writes bytes; errors (the proxy went away) are returned, not panicked on.
    pub async fn write(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.wire.write(bytes.as_ref()).await
    }

    /// The raw stream, for scripts that splice or echo bytes (CONNECT tests).
    pub fn wire(&mut self) -> &mut Wire<Box<dyn Io>> {
        &mut self.wire
    }
}

/// A running raw origin. Dropping it (or [`Origin::stop`]) closes the listener and every
/// connection it accepted.
pub struct Origin {
    addr: SocketAddr,
    record: Arc<Record>,
}

impl Origin {
    /// Serves on a new 127.0.0.1 ephemeral port; `script` runs once per accepted connection.
    pub async fn start<F, Fut>(script: F) -> Origin
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve(
            listener,
            |s| async move { Some(Box::new(s) as Box<dyn Io>) },
            script,
        )
    }

    /// Serves on an already bound listener (e.g. `[::1]:0`), with `wrap` turning each TCP
    /// stream into the stream the script sees (e.g. a TLS handshake; `None` drops it).
    pub fn serve<W, WFut, F, Fut>(listener: TcpListener, wrap: W, script: F) -> Origin
    where
        W: Fn(tokio::net::TcpStream) -> WFut + Send + Sync + 'static,
        WFut: Future<Output = Option<Box<dyn Io>>> + Send + 'static,
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("origin address");
        let record = Arc::new(Record::default());
        let (rec, wrap, script) = (record.clone(), Arc::new(wrap), Arc::new(script));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = rec.accepted.fetch_add(1, Ordering::SeqCst);
                let (rec2, wrap, script) = (rec.clone(), wrap.clone(), script.clone());
                rec.track(tokio::spawn(async move {
                    let Some(io) = wrap(stream).await else { return };
                    let conn = Conn {
                        index,
                        wire: Wire::new(io),
                        record: rec2,
                    };
                    script(conn).await;
                }));
            }
        });
        record.track(accept);
        Origin { addr, record }
    }

    /// An origin that answers every request on every connection with `f(request)`, keeping
    /// connections open until the peer closes. An empty answer closes without responding.
    pub async fn respond<F>(f: F) -> Origin
    where
        F: Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Origin::start(move |mut conn| {
            let f = f.clone();
            async move {
                while let Some(req) = conn.read_request().await {
                    let answer = f(&req);
                    if answer.is_empty() || conn.write(&answer).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await
    }

    /// An origin that answers every request with `200 OK` and `body` (keep-alive).
    pub async fn ok(body: &'static str) -> Origin {
        Origin::respond(move |_| ok(body)).await
    }

    /// An origin (or parent) that takes requests and never answers them, and the
    /// notification of the first one's arrival.
    pub async fn silent() -> (Origin, Arc<tokio::sync::Notify>) {
        let asked = Arc::new(tokio::sync::Notify::new());
        let notify = asked.clone();
        let origin = Origin::start(move |mut conn| {
            let asked = asked.clone();
            async move {
                if conn.read_request().await.is_some() {
                    asked.notify_one();
                    while conn.read_request().await.is_some() {}
                }
            }
        })
        .await;
        (origin, notify)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.record.accepted.load(Ordering::SeqCst)
    }

    /// Requests read so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.record
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last request read. Panics when there was none.
    pub fn last_request(&self) -> Request {
        self.requests()
            .pop()
            .expect("the origin received no request")
    }

    /// Closes the listener (its port refuses connections once this returns) and every
    /// connection it accepted.
    pub async fn stop(&self) {
        let tasks: Vec<_> =
            std::mem::take(&mut *self.record.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        for t in self
            .record
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            t.abort();
        }
    }
}

/// `HTTP/1.1 200 OK` with `Content-Length` and `body`.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A 127.0.0.1 port on which nothing listens (bound, then released).
pub fn refused_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct 127.0.0.1 ports free right now, for a child process to bind. All are held
/// until the last is picked: ports taken one at a time may repeat, and a process told to
/// listen twice on one port exits at start-up.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    held.map(|l| l.local_addr().expect("addr").port())
}
