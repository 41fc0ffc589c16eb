//! HTTP/1.1 message framing on raw byte streams (RFC 9112 §6), shared by the raw client
//! and the raw origins: read a head, then a body by Content-Length, chunked coding, or
//! until the peer closes.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest head the helpers accept before giving up (tests send far less).
const MAX_HEAD: usize = 1 << 20;

/// Why a message could not be read completely.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed before sending any byte of the message.
    Closed,
    /// The peer closed (or reset) in the middle of the message: it is incomplete.
    Incomplete(String),
    /// The bytes are not HTTP/1.x.
    Malformed(String),
    /// A socket error other than a reset.
    Io(io::Error),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A parsed message head: the start line split in three, and the fields in order.
#[derive(Clone, Debug, Default)]
pub struct Head {
    /// Request: method, target, version. Response: version, status, reason.
    pub start: [String; 3],
    /// Field names as sent (case preserved) and values with surrounding space trimmed.
    pub headers: Vec<(String, String)>,
    /// The head's exact bytes, start line through the blank line.
    pub raw: Vec<u8>,
}

impl Head {
    /// The first value of field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether field `name` is present at all.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether a comma-separated field (e.g. `Connection`) contains `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// How the body that follows this head is delimited, given the rules for its kind.
    fn framing(&self) -> Result<Framing, WireError> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(v) => v
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| WireError::Malformed(format!("bad Content-Length {v:?}"))),
            None => Ok(Framing::Close),
        }
    }
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the peer closes.
    Close,
}

/// The body framing of a response to `method` with this head (RFC 9112 §6.3).
pub fn response_framing(method: &str, head: &Head) -> Result<Framing, WireError> {
    let status: u16 = head.start[1].parse().unwrap_or(0);
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status))
    {
        return Ok(Framing::None);
    }
    head.framing()
}

/// The body framing of a request with this head: without a length there is no body.
pub fn request_framing(head: &Head) -> Result<Framing, WireError> {
    match head.framing()? {
        Framing::Close => Ok(Framing::None),
        f => Ok(f),
    }
}

/// A byte stream plus the bytes read from it but not consumed yet (pipelining).
pub struct Wire<S> {
    /// The underlying stream; write to it directly.
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// Wraps a stream with an empty read buffer.
    pub fn new(stream: S) -> Self {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes` and flushes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream. A reset counts as the end.
    async fn fill(&mut self) -> Result<usize, WireError> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if is_reset(&e) => Ok(0),
            Err(e) => Err(WireError::Io(e)),
        }
    }

    /// Bytes already buffered and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads one message head. [`WireError::Closed`] when the stream ends before any byte.
    pub async fn read_head(&mut self) -> Result<Head, WireError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(raw);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(WireError::Malformed("head too large".into()));
            }
            if self.fill().await? == 0 {
                return Err(if self.buf.is_empty() {
                    WireError::Closed
                } else {
                    WireError::Incomplete(format!(
                        "stream ended inside a head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                });
            }
        }
    }

    /// Reads a body delimited by `framing`; chunked bodies are decoded (trailers dropped).
    pub async fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, WireError> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => self.take(n).await,
            Framing::Close => {
                while self.fill().await? > 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
            Framing::Chunked => self.read_chunked().await,
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, WireError> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(WireError::Incomplete(format!(
                    "stream ended after {} of {n} body bytes",
                    self.buf.len()
                )));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line(&mut self) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(WireError::Incomplete(
                    "stream ended inside chunked body".into(),
                ));
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, WireError> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| WireError::Malformed(format!("bad chunk size line {text:?}")))?;
            if size == 0 {
                // Trailer section, ended by an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size).await?);
            if !self.line().await?.is_empty() {
                return Err(WireError::Malformed("chunk not followed by CRLF".into()));
            }
        }
    }

    /// Returns buffered bytes, or reads once and returns what came (empty at the end).
    pub async fn read_some(&mut self) -> Result<Vec<u8>, WireError> {
        if self.buf.is_empty() {
            self.fill().await?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads until the peer closes and returns what arrived (buffered bytes included).
    pub async fn read_to_close(&mut self) -> Result<Vec<u8>, WireError> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(raw: Vec<u8>) -> Result<Head, WireError> {
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default();
    let mut parts = start_line.splitn(3, ' ');
    let start = [
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    ];
    if start[1].is_empty() {
        return Err(WireError::Malformed(format!(
            "bad start line {start_line:?}"
        )));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| WireError::Malformed(format!("bad field line {line:?}")))?;
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Head {
        start,
        headers,
        raw,
    })
}
