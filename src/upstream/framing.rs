//! Strict framing of upstream responses (RFC 9112 §6.3, §11): what hyper would accept but a
//! proxy must not relay or cache.
//!
//! [`check_head`] runs on every parsed response head (a few map lookups): a `101`,
//! `Content-Length` with `Transfer-Encoding`, more than one `Content-Length` value, and any
//! `Transfer-Encoding` other than exactly `chunked` make the response a 502; the
//! connection is then dropped, never pooled. [`Checked`] wraps the upstream stream and
//! rejects bare LF line ends in response heads (httparse accepts them) by overwriting the
//! LF with NUL, so hyper fails to parse that head. It scans only head bytes: from the
//! first byte after a request head is written to the end of the final (non-1xx) head; the
//! client marks each request it hands hyper ([`HeadNext`]), so no upload byte arms it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a response head's framing is refused, or `Ok` when it is unambiguous.
pub fn check_head(status: StatusCode, headers: &HeaderMap) -> Result<(), &'static str> {
    // RFC 9110 §15.2.2: a server switches protocols only when the request asked to, and
    // sluice forwards no `Upgrade` (hop-by-hop). Relayed, an unasked 101 left the client
    // with an interim answer and a dead connection instead of a response.
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("101 Switching Protocols to a request that asked for no upgrade");
    }
    let mut te = headers.get_all(TRANSFER_ENCODING).iter();
    let mut cl = headers.get_all(CONTENT_LENGTH).iter();
    match (te.next(), cl.next()) {
        (None, None) => Ok(()),
        (Some(_), Some(_)) => Err("both Content-Length and Transfer-Encoding"),
        (Some(t), None) => {
            let only_chunked = t.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked");
            if only_chunked && te.next().is_none() {
                Ok(())
            } else {
                Err("a Transfer-Encoding other than chunked")
            }
        }
        (None, Some(c)) => {
            if cl.next().is_none() && !c.as_bytes().contains(&b',') {
                Ok(())
            } else {
                Err("more than one Content-Length")
            }
        }
    }
}

/// Where the response-head scanner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Waiting for the next request to be written.
    Idle,
    /// In a head: bytes into the status line (saturating), and whether it is a 1xx.
    Head { column: u8, interim: bool },
    /// After an LF: a second CRLF ends the head.
    LineStart { interim: bool },
    /// After the CR of the blank line.
    EndLf { interim: bool },
}

/// Set by the client just before it hands hyper a request: the next write on the
/// connection is that request's head. Upload bytes (an origin may answer before it has
/// read them all, and they may look like anything) are written with it unset.
#[derive(Clone, Default)]
pub struct HeadNext(Arc<AtomicBool>);

impl HeadNext {
    /// A request is about to be written.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// An upstream stream whose response heads are checked for bare LF line ends.
    pub struct Checked<T> {
        #[pin]
        inner: T,
        scan: Scan,
        last: u8,
        next: HeadNext,
    }
}

impl<T> Checked<T> {
    /// Wraps a fresh upstream connection; `next` is set before each request.
    pub fn new(inner: T, next: HeadNext) -> Self {
        Checked {
            inner,
            scan: Scan::Idle,
            last: 0,
            next,
        }
    }
}

/// Scans `bytes`; on a bare LF overwrites it with NUL and stops. Inside a header line past
/// the status code only the next LF matters, so the scanner jumps to it.
fn scan(state: &mut Scan, last: &mut u8, bytes: &mut [u8]) {
    if *state
        == (Scan::Head {
            column: 0,
            interim: false,
        })
    {
        if let Some(end) = whole_final_head(bytes) {
            let head = &bytes[..end];
            if let Some(bare) = memchr::memchr_iter(b'\n', head).find(|&i| head[i - 1] != b'\r') {
                bytes[bare] = 0;
            }
            *state = Scan::Idle;
            return;
        }
    }
    let mut i = 0;
    while i < bytes.len() {
        if let Scan::Head {
            column: u8::MAX, ..
        } = *state
        {
            match memchr::memchr(b'\n', &bytes[i..]) {
                Some(0) => {}
                Some(n) => {
                    *last = bytes[i + n - 1];
                    i += n;
                }
                None => {
                    *last = bytes[bytes.len() - 1];
                    return;
                }
            }
        }
        let b = &mut bytes[i];
        i += 1;
        let byte = *b;
        *state = match *state {
            Scan::Idle => return,
            _ if byte == b'\n' && *last != b'\r' => {
                *b = 0;
                *state = Scan::Idle;
                return;
            }
            Scan::Head { column, interim } => match byte {
                // An empty line (CRLF) before a status line: httparse skips it, so the
                // status line, and its 1xx test, is still to come.
                b'\n' if column == 1 => Scan::Head { column: 0, interim },
                b'\n' => Scan::LineStart { interim },
                // "HTTP/1.1 1xx": the status code's first digit is the tenth byte.
                _ => Scan::Head {
                    column: column.saturating_add(1),
                    interim: interim || (column == 9 && byte == b'1'),
                },
            },
            Scan::LineStart { interim } => match byte {
                b'\r' => Scan::EndLf { interim },
                _ => Scan::Head {
                    column: u8::MAX,
                    interim,
                },
            },
            Scan::EndLf { interim } => match (byte, interim) {
                (b'\n', true) => Scan::Head {
                    column: 0,
                    interim: false,
                },
                (b'\n', false) => Scan::Idle,
                // A stray CR: httparse refuses it.
                _ => Scan::Idle,
            },
        };
        *last = byte;
    }
}

/// The usual read: a whole final response head at the start of `bytes`. Returns where it
/// ends, past its first CRLF CRLF, so that two vectorised searches check it instead of the
/// byte-wise scanner. If every LF before that point has its CR, that point is the head's
/// end; if one does not, the first such LF is the one the byte-wise scanner would null.
/// `None` for the rest, left to the byte-wise scanner: a 1xx, an empty line before the
/// status line, a head the read cut short.
fn whole_final_head(bytes: &[u8]) -> Option<usize> {
    let starts_with_line_end = matches!(bytes.first(), None | Some(b'\r' | b'\n'));
    // "HTTP/1.1 1xx": the status code's first digit is the tenth byte.
    if starts_with_line_end || bytes.get(9) == Some(&b'1') {
        return None;
    }
    // The first CR at a line start must end the head: one that no LF follows ends the
    // byte-wise scan there (httparse refuses the head), so the bytes after it, up to a
    // later CRLF CRLF, may not be nulled.
    let at = memchr::memmem::find(bytes, b"\r\n\r")?;
    (bytes.get(at + 3) == Some(&b'\n')).then_some(at + 4)
}

impl<T: AsyncRead> AsyncRead for Checked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if *this.scan != Scan::Idle {
            scan(this.scan, this.last, &mut buf.filled_mut()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Checked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        arm(this.scan, this.last, this.next, buf);
        this.inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            arm(this.scan, this.last, this.next, first);
        }
        this.inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request head is being written: hyper writes one only after the previous response
/// ended, so the next bytes read start a response head. Only the first write after the
/// client marked a request arms the scanner: upload bytes that continue after an early
/// response may begin with a request line too, and arming there would scan the response
/// body as a head and overwrite its next LF.
fn arm(state: &mut Scan, last: &mut u8, next: &HeadNext, written: &[u8]) {
    if *state == Scan::Idle && next.0.load(Ordering::Acquire) && is_request_line(written) {
        next.0.store(false, Ordering::Release);
        *state = Scan::Head {
            column: 0,
            interim: false,
        };
        *last = 0;
    }
}

/// Whether `bytes` start with `METHOD SP target SP HTTP/1.1 CRLF`, as hyper writes heads.
fn is_request_line(bytes: &[u8]) -> bool {
    let Some(end) = memchr::memchr(b'\n', bytes) else {
        return false;
    };
    let line = &bytes[..end];
    let method = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0 && line.get(method) == Some(&b' ') && line.ends_with(b" HTTP/1.1\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn framing_fields_table() {
        for (pairs, ok) in [
            (vec![], true),
            (vec![("content-length", "5")], true),
            (vec![("transfer-encoding", " Chunked ")], true),
            (
                vec![("content-length", "5"), ("transfer-encoding", "chunked")],
                false,
            ),
            (
                vec![("content-length", "5"), ("content-length", "5")],
                false,
            ),
            (vec![("content-length", "5, 5")], false),
            (vec![("transfer-encoding", "gzip, chunked")], false),
            (
                vec![
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                false,
            ),
            (vec![("transfer-encoding", "identity")], false),
        ] {
            assert_eq!(
                check_head(StatusCode::OK, &head(&pairs)).is_ok(),
                ok,
                "{pairs:?}"
            );
        }
        let upgrade = head(&[("upgrade", "websocket"), ("connection", "upgrade")]);
        assert!(check_head(StatusCode::SWITCHING_PROTOCOLS, &upgrade).is_err());
    }

    fn run(input: &[u8], split: usize) -> Vec<u8> {
        let (mut state, mut last, next) = (Scan::Idle, 0, HeadNext::default());
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        arm(&mut state, &mut last, &next, head);
        assert_eq!(state, Scan::Idle, "upload bytes never arm the scanner");
        next.set();
        arm(&mut state, &mut last, &next, b"body bytes");
        assert_eq!(state, Scan::Idle, "only a request head arms the scanner");
        arm(&mut state, &mut last, &next, head);
        let mut bytes = input.to_vec();
        let (a, b) = bytes.split_at_mut(split);
        scan(&mut state, &mut last, a);
        scan(&mut state, &mut last, b);
        bytes
    }

    #[test]
    fn bare_lf_in_a_head_is_nulled_but_not_in_a_body() {
        let good = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\nmore\n";
        let bad = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\n\r\n";
        for split in 0..=good.len() {
            assert_eq!(run(good, split), good.to_vec(), "split {split}");
        }
        for split in 0..=bad.len() {
            assert!(run(bad, split).contains(&0), "split {split}");
        }
        assert!(run(b"HTTP/1.1 200 OK\nA: b\r\n\r\n", 3).contains(&0));
        // A CRLF CRLF in the body after a head that ends in a bare LF: the head's LF is
        // nulled whether the head is checked whole or byte by byte.
        let bad = b"HTTP/1.1 200 OK\r\nA: b\n\nbody\r\n\r\n";
        let good = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\n\r\n\r\nmore\n";
        for split in 0..=bad.len() {
            let got = run(bad, split);
            assert_eq!(got.iter().position(|&b| b == 0), Some(21), "split {split}");
        }
        for split in 0..=good.len() {
            assert_eq!(run(good, split), good.to_vec(), "split {split}");
        }
        // Long lines, where the scanner jumps from line start to LF.
        let long = "x".repeat(300);
        let good = format!("HTTP/1.1 200 OK\r\nA: {long}\r\nB: {long}\r\n\r\n{long}\n");
        let bad = format!("HTTP/1.1 200 OK\r\nA: {long}\r\nB: {long}\n\r\n");
        for split in 0..=good.len() {
            assert_eq!(
                run(good.as_bytes(), split),
                good.as_bytes(),
                "split {split}"
            );
        }
        for split in 0..=bad.len() {
            assert!(run(bad.as_bytes(), split).contains(&0), "split {split}");
        }
    }

    /// Regression: an empty line before a status line (skipped by httparse) made the
    /// scanner read the 100's status line as a header line, miss that it was a 1xx, and
    /// stop at the end of its head, so a bare LF in the final head got through.
    #[test]
    fn empty_lines_before_a_status_line_keep_the_interim_check() {
        let bad: &[&[u8]] = &[
            b"\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\nContent-Length: 2\r\n\r\nok",
            b"\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 200 OK\r\nA: b\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 200 OK\r\nA: b\n\r\n",
            b"\r\nHTTP/1.1 200 OK\r\nA: b\n\r\n",
        ];
        for bad in bad {
            for split in 0..=bad.len() {
                let got = run(bad, split);
                assert!(got.contains(&0), "{:?} split {split}", bad.escape_ascii());
            }
        }
        let good =
            b"\r\nHTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\nmore\n";
        for split in 0..=good.len() {
            assert_eq!(run(good, split), good.to_vec(), "split {split}");
        }
    }
}

/// The whole-head fast path against the byte-wise scanner (one byte per read never holds a
/// whole head), over generated heads and every way of cutting them into two and three reads.
#[cfg(test)]
mod fast_path_equivalence {
    use super::*;

    fn scan_reads(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let (mut state, mut last) = (
            Scan::Head {
                column: 0,
                interim: false,
            },
            0,
        );
        let mut bytes = input.to_vec();
        let mut rest: &mut [u8] = &mut bytes;
        let mut at = 0;
        for &c in cuts {
            let (read, more) = rest.split_at_mut(c - at);
            scan(&mut state, &mut last, read);
            (rest, at) = (more, c);
        }
        scan(&mut state, &mut last, rest);
        bytes
    }

    fn bytewise(input: &[u8]) -> Vec<u8> {
        scan_reads(input, &(1..input.len()).collect::<Vec<_>>())
    }

    fn check(input: &[u8], three_reads: bool) -> Result<(), String> {
        let want = bytewise(input);
        let n = input.len();
        for a in 0..=n {
            let bs = if three_reads { a..=n } else { n..=n };
            for b in bs {
                if scan_reads(input, &[a, b]) != want {
                    return Err(format!("{} reads cut at {a}, {b}", input.escape_ascii()));
                }
            }
        }
        Ok(())
    }

    /// Regression: a CR at the start of a header line that no LF follows ends the byte-wise
    /// scan (httparse refuses the head), but the fast path went on to the first CRLF CRLF
    /// and nulled a later bare LF, possibly one in the body.
    #[test]
    fn a_stray_cr_at_a_line_start_ends_the_scan_on_both_paths() {
        let input = b"HTTP/1.1 200 OK\r\n\rA: b\nC: d\r\n\r\n";
        assert_eq!(bytewise(input), input.to_vec());
        check(input, true).unwrap();
    }

    #[test]
    fn fast_path_nulls_what_the_bytewise_scanner_nulls() {
        let tokens: &[&[u8]] = &[
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 100 Continue",
            b"HTTP/1.1 1",
            b"\r\n",
            b"\n",
            b"\r",
            b"A: b",
            b"x",
            b"1",
            b"\r\n\r\n",
            b"\n\r\n",
            b"\r\n\r",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..1 + rnd(10) {
                input.extend_from_slice(tokens[rnd(tokens.len())]);
            }
            check(&input, round % 10 == 0).unwrap();
        }
        // Every string of up to 11 bytes over CR, LF, '1' and 'x': the status code's
        // digit at the tenth byte, stray CRs and empty lines in every position.
        let alphabet = [b'\r', b'\n', b'1', b'x'];
        for len in 0..=11u32 {
            for mut code in 0..4usize.pow(len) {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[code % 4];
                        code /= 4;
                        b
                    })
                    .collect();
                check(&input, false).unwrap();
            }
        }
    }
}
