//! A strict check of request heads on the raw client byte stream, before hyper parses them.
//!
//! hyper (httparse) accepts bare LF line ends, and silently resolves a head that carries both
//! `Content-Length` and `Transfer-Encoding`, or the same `Content-Length` twice. RFC 9112
//! lets a recipient reject all of these, and a proxy should (§11.2, request smuggling). This
//! checker runs inside the client IO wrapper on the bytes as they are read, without copying
//! them: it follows the message framing (length or chunked body, then the next head) and,
//! when a head breaks a rule, overwrites the offending byte with NUL. httparse then fails
//! on that head, and hyper answers 400 and closes the connection — nothing is forwarded.
//!
//! Rejected here: bare LF (anywhere in a head), obs-fold (a field line starting with SP or
//! HTAB), `Content-Length` together with `Transfer-Encoding`, more than one
//! `Content-Length` or `Transfer-Encoding` field, a `Content-Length` that is not plain digits,
//! and a `Transfer-Encoding` other than exactly `chunked`. Everything else (bare CR, NUL and
//! controls, whitespace before the colon, bad chunk sizes, chunk-extension and trailer
//! limits) hyper rejects on its own. When the framing turns out not to be HTTP (a CONNECT
//! tunnel, or a chunked body hyper will refuse anyway) the checker stops for the connection.

const CL: &[u8] = b"content-length:";
const TE: &[u8] = b"transfer-encoding:";
const CONNECT: &[u8] = b"CONNECT ";

/// Where in the stream the checker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before a request line (empty lines there are skipped, as httparse does).
    Start,
    StartCr,
    /// Matching `CONNECT ` at the start of the request line; bytes matched so far.
    Method(u8),
    /// Inside a line whose content does not matter: look for its end.
    Rest,
    /// At the first byte of a field line (or of the blank line ending the head).
    LineStart,
    /// Matching a framing field name (`CL` or `TE`) with its colon; bytes matched so far.
    Name(Field, u8),
    /// In a `Content-Length` value: whether digits were seen, and whether they ended.
    ClValue {
        digits: bool,
        done: bool,
    },
    /// In a `Transfer-Encoding` value: bytes of `chunked` matched, and whether it ended.
    TeValue {
        matched: u8,
        done: bool,
    },
    /// After a framing value's CR.
    ValueLf,
    /// After the CR of the blank line.
    EndLf,
    /// In a length-delimited body: bytes left.
    Body(u64),
    /// Chunked body (RFC 9112 §7.1), mirroring hyper's decoder.
    ChunkStart,
    ChunkSize,
    ChunkLws,
    ChunkExt,
    ChunkSizeLf,
    ChunkData(u64),
    ChunkDataCr,
    ChunkDataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    TrailerEndLf,
    /// No more checking on this connection.
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Cl,
    Te,
}

/// Per-connection checker state; a few bytes, no allocation.
#[derive(Debug)]
pub struct HeadCheck {
    state: State,
    /// The byte before the current one (for the CR before an LF across reads).
    last: u8,
    content_lengths: u8,
    transfer_encodings: u8,
    length: u64,
    chunk: u64,
    connect: bool,
}

impl Default for HeadCheck {
    fn default() -> Self {
        HeadCheck {
            state: State::Start,
            last: 0,
            content_lengths: 0,
            transfer_encodings: 0,
            length: 0,
            chunk: 0,
            connect: false,
        }
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl HeadCheck {
    /// Whether a head was rejected (its offending byte overwritten) or checking stopped.
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Whether the bytes checked so far end inside a request head: a request has begun to
    /// arrive that hyper cannot have been handed yet.
    pub fn in_head(&self) -> bool {
        use State::*;
        matches!(
            self.state,
            StartCr
                | Method(_)
                | Rest
                | LineStart
                | Name(..)
                | ClValue { .. }
                | TeValue { .. }
                | ValueLf
                | EndLf
        )
    }

    /// Checks bytes just read from the client, in order; may overwrite one byte with NUL
    /// to make hyper refuse the head it belongs to.
    pub fn scan(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            // Runs of bytes that need no look: skip them in one step.
            match self.state {
                State::Off => return,
                State::Rest => match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(n) => {
                        self.last = if n > 0 { bytes[i + n - 1] } else { self.last };
                        i += n;
                    }
                    None => {
                        self.last = bytes[bytes.len() - 1];
                        return;
                    }
                },
                State::Body(left) | State::ChunkData(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    let left = left - take;
                    i += take as usize;
                    self.last = bytes[i - 1];
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Start,
                        (State::Body(_), n) => State::Body(n),
                        (_, 0) => State::ChunkDataCr,
                        (_, n) => State::ChunkData(n),
                    };
                    continue;
                }
                _ => {}
            }
            let b = bytes[i];
            match self.step(b) {
                Ok(state) => self.state = state,
                Err(()) => {
                    bytes[i] = 0;
                    self.state = State::Off;
                    return;
                }
            }
            self.last = b;
            i += 1;
        }
    }

    /// One byte of a head or of chunked framing. `Err` rejects the head at this byte.
    fn step(&mut self, b: u8) -> Result<State, ()> {
        use State::*;
        let lower = b.to_ascii_lowercase();
        Ok(match self.state {
            Start => match b {
                b'\r' => StartCr,
                b'\n' => return Err(()),
                _ => {
                    self.content_lengths = 0;
                    self.transfer_encodings = 0;
                    self.length = 0;
                    self.connect = false;
                    return self.method(0, b);
                }
            },
            StartCr => match b {
                b'\n' => Start,
                _ => return Err(()),
            },
            Method(m) => return self.method(m, b),
            Rest => match b {
                b'\n' if self.last != b'\r' => return Err(()),
                b'\n' => LineStart,
                _ => Rest,
            },
            LineStart => match lower {
                b'\r' => EndLf,
                b'\n' | b' ' | b'\t' => return Err(()),
                b'c' => Name(Field::Cl, 1),
                b't' => Name(Field::Te, 1),
                _ => Rest,
            },
            Name(field, m) => {
                let name = if field == Field::Cl { CL } else { TE };
                if lower != name[m as usize] {
                    self.state = Rest;
                    return self.step(b);
                }
                if m as usize + 1 < name.len() {
                    Name(field, m + 1)
                } else if field == Field::Cl {
                    self.content_lengths = self.content_lengths.saturating_add(1);
                    ClValue {
                        digits: false,
                        done: false,
                    }
                } else {
                    self.transfer_encodings = self.transfer_encodings.saturating_add(1);
                    TeValue {
                        matched: 0,
                        done: false,
                    }
                }
            }
            ClValue { digits, done } => match b {
                b'0'..=b'9' if !done => {
                    self.length = self
                        .length
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(b - b'0')))
                        .ok_or(())?;
                    ClValue { digits: true, done }
                }
                b if is_ows(b) => ClValue {
                    digits,
                    done: digits,
                },
                b'\r' if digits => ValueLf,
                _ => return Err(()),
            },
            TeValue { matched, done } => {
                let want = b"chunked";
                match b {
                    b if is_ows(b) => TeValue {
                        matched,
                        done: matched > 0,
                    },
                    b'\r' if matched as usize == want.len() => ValueLf,
                    _ if !done
                        && (matched as usize) < want.len()
                        && lower == want[matched as usize] =>
                    {
                        TeValue {
                            matched: matched + 1,
                            done,
                        }
                    }
                    _ => return Err(()),
                }
            }
            ValueLf => match b {
                b'\n' => LineStart,
                _ => return Err(()),
            },
            EndLf => match b {
                b'\n' => self.head_done()?,
                _ => return Err(()),
            },
            ChunkStart | ChunkSize => match (hex(b), self.state) {
                (Some(d), _) => {
                    let Some(n) = self.chunk.checked_mul(16).and_then(|n| n.checked_add(d)) else {
                        return Ok(Off);
                    };
                    self.chunk = n;
                    ChunkSize
                }
                (None, ChunkStart) => Off,
                (None, _) => self.after_size(b),
            },
            ChunkLws => self.after_size(b),
            ChunkExt => match b {
                b'\r' => ChunkSizeLf,
                b'\n' => Off,
                _ => ChunkExt,
            },
            ChunkSizeLf => match (b, self.chunk) {
                (b'\n', 0) => TrailerStart,
                (b'\n', n) => ChunkData(n),
                _ => Off,
            },
            ChunkDataCr => match b {
                b'\r' => ChunkDataLf,
                _ => Off,
            },
            ChunkDataLf => match b {
                b'\n' => {
                    self.chunk = 0;
                    ChunkStart
                }
                _ => Off,
            },
            TrailerStart => match b {
                b'\r' => TrailerEndLf,
                _ => Trailer,
            },
            Trailer => match b {
                b'\r' => TrailerLf,
                _ => Trailer,
            },
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => Off,
            },
            TrailerEndLf => match b {
                b'\n' => Start,
                _ => Off,
            },
            Body(_) | ChunkData(_) | Off => self.state,
        })
    }

    fn method(&mut self, m: u8, b: u8) -> Result<State, ()> {
        if b == b'\n' {
            return Err(());
        }
        if b != CONNECT[m as usize] {
            return Ok(State::Rest);
        }
        if m as usize + 1 == CONNECT.len() {
            self.connect = true;
            return Ok(State::Rest);
        }
        Ok(State::Method(m + 1))
    }

    fn after_size(&self, b: u8) -> State {
        match b {
            b' ' | b'\t' => State::ChunkLws,
            b';' => State::ChunkExt,
            b'\r' => State::ChunkSizeLf,
            _ => State::Off,
        }
    }

    /// The blank line ending a head: judge its framing fields, then follow its body.
    fn head_done(&mut self) -> Result<State, ()> {
        let (cl, te) = (self.content_lengths, self.transfer_encodings);
        if cl > 1 || te > 1 || (cl > 0 && te > 0) {
            return Err(());
        }
        Ok(if self.connect {
            State::Off
        } else if te == 1 {
            self.chunk = 0;
            State::ChunkStart
        } else if self.length > 0 {
            State::Body(self.length)
        } else {
            State::Start
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every possible point; returns whether it was rejected and
    /// the state afterwards (the same for every split).
    fn check(input: &[u8]) -> (bool, State) {
        let mut outcome = None;
        for split in 0..=input.len() {
            let mut bytes = input.to_vec();
            let mut c = HeadCheck::default();
            let (a, b) = bytes.split_at_mut(split);
            c.scan(a);
            c.scan(b);
            let rejected = bytes.contains(&0) && !input.contains(&0);
            let got = (rejected, c.state);
            if let Some(prev) = outcome {
                assert_eq!(
                    prev,
                    got,
                    "split at {split} of {:?}",
                    String::from_utf8_lossy(input)
                );
            }
            outcome = Some(got);
        }
        outcome.unwrap_or((false, State::Start))
    }

    #[test]
    fn good_heads_pass_and_framing_is_followed() {
        for input in [
            &b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"\r\nGET http://a/ HTTP/1.1\r\nHost: a\r\nCookie: c\r\nTE: x\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"POST http://a/ HTTP/1.1\r\ncontent-length:  5 \r\n\r\nhe\nlo",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5;a=b\r\nhe\nlo\r\n0\r\nT: x\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nContent-Type: x\r\nTransfer-Encodings: x\r\n\r\n",
            // Legal if unusual: OWS as a tab, upper case, leading zeros, BWS in chunk lines.
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding:\tCHUNKED\t\r\n\r\n0005 ;a=b\r\nhello\r\n0\t\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 005\r\n\r\nhello",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000005\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(check(input), (false, State::Start));
        }
        // Two pipelined requests, the first with a body that looks like a head.
        let two = b"POST http://a/ HTTP/1.1\r\nContent-Length: 7\r\n\r\nX\nY: z\nGET http://a/ HTTP/1.1\r\n\r\n";
        assert_eq!(check(two), (false, State::Start));
        // CONNECT switches the checker off (the stream becomes a tunnel).
        assert_eq!(
            check(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n\n\n\0"),
            (false, State::Off)
        );
    }

    #[test]
    fn ambiguous_heads_are_rejected() {
        for input in [
            &b"GET http://a/ HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET http://a/ HTTP/1.1\r\nHost: a\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\n",
            b"\nGET http://a/ HTTP/1.1\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 1 1\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunk ed\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n",
            b"POST http://a/ HTTP/1.0\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(check(input).0, "{:?}", String::from_utf8_lossy(input));
        }
        // The second head of a pipeline is checked too, after the first one's body.
        let two = b"POST http://a/ HTTP/1.1\r\nContent-Length: 2\r\n\r\n\r\nGET http://a/ HTTP/1.1\nHost: a\r\n\r\n";
        assert!(check(two).0);
        let chunked = b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\n\n\r\n0\r\n\r\nGET / HTTP/1.1\n\n";
        assert!(check(chunked).0);
    }

    #[test]
    fn a_head_still_arriving_is_told_apart_from_a_finished_one() {
        let mut c = HeadCheck::default();
        c.scan(&mut b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n".to_vec());
        assert!(!c.in_head(), "in the body");
        c.scan(&mut b"abcGET http://a/ HTTP/1.1\r\nHo".to_vec());
        assert!(
            c.in_head(),
            "a pipelined head begun behind a complete request"
        );
        c.scan(&mut b"st: a\r\n\r\n".to_vec());
        assert!(!c.in_head(), "the head is whole");
    }

    #[test]
    fn chunked_framing_hyper_refuses_stops_the_checker() {
        for input in [
            &b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\n",
        ] {
            assert_eq!(check(input), (false, State::Off));
        }
    }
}
