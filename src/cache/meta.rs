//! `ObjectMeta`: everything the cache keeps about one stored response except its body.
//!
//! Stored in the `objects` tree with a compact versioned binary encoding ([`ObjectMeta::encode`]);
//! serde is derived too, for the admin API and debugging.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First byte of every encoded meta; bump when the layout changes.
const ENCODING_VERSION: u8 = 1;

/// A stored response's status, headers, timing and body identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The primary cache key (normalised absolute URL).
    pub url: String,
    /// Response status code.
    pub status: u16,
    /// Response header fields in order (hop-by-hop fields already stripped by the proxy).
    #[serde(with = "header_list")]
    pub headers: HeaderMap,
    /// When the request that produced this response was sent upstream (RFC 9111 §4.2.3).
    pub request_time: SystemTime,
    /// When the response head was received.
    pub response_time: SystemTime,
    /// When this object was written to the cache.
    pub stored_at: SystemTime,
    /// SHA-256 of the body as stored (after any Content-Encoding, i.e. the bytes on the wire).
    #[serde(with = "hex_sha")]
    pub body_sha256: [u8; 32],
    /// Body length in bytes.
    pub body_len: u64,
    /// Lowercase field names of the response's Vary, sorted.
    pub vary: Vec<String>,
    /// The secondary key: the request's normalised values for `vary` (empty without Vary).
    pub secondary: String,
}

/// A stored meta that cannot be decoded (written by a newer build or damaged).
#[derive(Debug, thiserror::Error)]
#[error("unreadable cache object meta")]
pub struct DecodeError;

impl ObjectMeta {
    /// Builds the meta for a complete response about to be stored: computes the body digest,
    /// the Vary spec and secondary key from the request, and drops the fields named by
    /// qualified `private="..."` / `no-cache="..."` (a shared cache must not store them).
    #[allow(clippy::too_many_arguments)]
    pub fn from_response(
        key: &super::key::CacheKey,
        status: StatusCode,
        resp_headers: &HeaderMap,
        req_headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        body: &[u8],
    ) -> ObjectMeta {
        let mut headers = resp_headers.clone();
        for name in super::policy::fields_not_stored(resp_headers) {
            headers.remove(name.as_str());
        }
        // RFC 9110 §6.6.1: a cache records a Date-less response's receipt time as its Date.
        if !headers.contains_key(http::header::DATE) {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(response_time)) {
                headers.insert(http::header::DATE, v);
            }
        }
        let vary = super::vary::spec(resp_headers);
        let secondary = super::vary::secondary_key(&vary, req_headers);
        ObjectMeta {
            url: key.as_str().to_string(),
            status: status.as_u16(),
            headers,
            // Millisecond precision, as stored, so a meta read back equals the one written.
            request_time: from_millis(millis(request_time)),
            response_time: from_millis(millis(response_time)),
            stored_at: from_millis(millis(SystemTime::now())),
            body_sha256: sha256(body),
            body_len: body.len() as u64,
            vary,
            secondary,
        }
    }

    /// A copy whose header values own exactly their bytes. Values parsed off the network are
    /// slices of the connection's read buffer, and holding one holds the whole buffer (8 KiB
    /// or more): a long-lived copy (the memory tier) must not.
    pub fn detached(&self) -> ObjectMeta {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let mut owned =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            owned.set_sensitive(value.is_sensitive());
            headers.append(name.clone(), owned);
        }
        ObjectMeta {
            url: self.url.clone(),
            status: self.status,
            headers,
            request_time: self.request_time,
            response_time: self.response_time,
            stored_at: self.stored_at,
            body_sha256: self.body_sha256,
            body_len: self.body_len,
            vary: self.vary.clone(),
            secondary: self.secondary.clone(),
        }
    }

    /// The response status as a typed value (an out-of-range stored value reads as 500).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Encodes to the compact form kept in sled.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.url.len());
        out.push(ENCODING_VERSION);
        put_bytes(&mut out, self.url.as_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        for t in [self.request_time, self.response_time, self.stored_at] {
            out.extend_from_slice(&millis(t).to_be_bytes());
        }
        out.extend_from_slice(&self.body_sha256);
        out.extend_from_slice(&self.body_len.to_be_bytes());
        put_u32(&mut out, self.vary.len());
        for v in &self.vary {
            put_bytes(&mut out, v.as_bytes());
        }
        put_bytes(&mut out, self.secondary.as_bytes());
        put_u32(&mut out, self.headers.len());
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_str().as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        out
    }

    /// Decodes what [`encode`](Self::encode) wrote; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<ObjectMeta, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [ENCODING_VERSION] {
            return Err(DecodeError);
        }
        let url = r.string()?;
        let status = u16::from_be_bytes(r.array()?);
        let request_time = from_millis(u64::from_be_bytes(r.array()?));
        let response_time = from_millis(u64::from_be_bytes(r.array()?));
        let stored_at = from_millis(u64::from_be_bytes(r.array()?));
        let body_sha256 = r.array()?;
        let body_len = u64::from_be_bytes(r.array()?);
        let n = r.u32()?;
        let mut vary = Vec::new();
        for _ in 0..n {
            vary.push(r.string()?);
        }
        let secondary = r.string()?;
        let n = r.u32()?;
        let mut headers = HeaderMap::new();
        for _ in 0..n {
            let name = HeaderName::from_bytes(r.bytes()?).map_err(|_| DecodeError)?;
            let value = HeaderValue::from_bytes(r.bytes()?).map_err(|_| DecodeError)?;
            headers.append(name, value);
        }
        Ok(ObjectMeta {
            url,
            status,
            headers,
            request_time,
            response_time,
            stored_at,
            body_sha256,
            body_len,
            vary,
            secondary,
        })
    }

    /// Bytes this object is charged for in the size bound (meta plus body).
    pub fn accounted_size(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 8)
            .sum();
        (128 + self.url.len() * 2 + self.secondary.len() + headers) as u64 + self.body_len
    }
}

/// SHA-256 of a body.
pub fn sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n.min(u32::MAX as usize) as u32).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| DecodeError)
    }
    fn u32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError)
    }
}

/// serde for `HeaderMap` as an ordered list of `[name, value]` pairs (values lossily as text).
mod header_list {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(h: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, String)> = h
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(d)?;
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(D::Error::custom)?;
            let value = HeaderValue::from_str(&v).map_err(D::Error::custom)?;
            h.append(name, value);
        }
        Ok(h)
    }
}

/// serde for a SHA-256 as lowercase hex.
mod hex_sha {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(D::Error::custom)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A meta for tests: status 200, the given headers, times at `t`.
    pub(crate) fn sample(url: &str, headers: &[(&str, &str)], body: &[u8]) -> ObjectMeta {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        ObjectMeta {
            url: url.to_string(),
            status: 200,
            headers: h,
            request_time: t,
            response_time: t,
            stored_at: t,
            body_sha256: sha256(body),
            body_len: body.len() as u64,
            vary: Vec::new(),
            secondary: String::new(),
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let mut m = sample(
            "http://a/x",
            &[("etag", "\"1\""), ("x-multi", "a"), ("x-multi", "b")],
            b"hi",
        );
        m.vary = vec!["accept-encoding".into()];
        m.secondary = "accept-encoding:gzip".into();
        let enc = m.encode();
        assert_eq!(ObjectMeta::decode(&enc).unwrap(), m);
        for cut in [0, 1, 10, enc.len() - 1] {
            assert!(
                ObjectMeta::decode(&enc[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut bad = enc.clone();
        bad[0] = 99;
        assert!(ObjectMeta::decode(&bad).is_err());
    }

    #[test]
    fn serde_json_round_trips() {
        let m = sample("http://a/x", &[("etag", "\"1\"")], b"hi");
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(&hex::encode(m.body_sha256)));
        let back: ObjectMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
