//! The classifier pipeline: response bodies in, [`Verdict`]s out.
//!
//! `decode` turns raw bytes into a [`Document`] (decoded body, text, URIs); each classifier
//! (`digest`, `pdq`, `rules`, `model`) implements [`Classifier`] over a `Document`;
//! `pipeline` runs them on a bounded worker pool and memoises verdicts by body SHA-256 and
//! reading (see [`pipeline::reading`]).

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod decode;
pub mod digest;
pub mod model;
pub mod pdq;
pub mod pipeline;
pub mod rules;

/// A response body and what is known about it, before decoding.
#[derive(Clone, Debug, Default)]
pub struct Content {
    /// The bytes as they came off the wire (still Content-Encoded).
    pub bytes: bytes::Bytes,
    /// The `Content-Type` header's media type, lowercased, without parameters (may be empty).
    pub declared_type: String,
    /// The `charset` parameter of `Content-Type`, if any.
    pub charset: Option<String>,
    /// The `Content-Encoding` header value (may be empty).
    pub content_encoding: String,
    /// The request URL, when known.
    pub url: Option<String>,
    /// Response header fields (lowercase name, value) for `header` rules.
    pub headers: Vec<(String, String)>,
}

/// A body after bounded decoding: what classifiers look at.
#[derive(Clone, Debug, Default)]
pub struct Document {
    /// The decoded body (Content-Encoding undone). Its SHA-256 is the verdict key.
    pub body: bytes::Bytes,
    /// Lowercase hex SHA-256 of `body`.
    pub sha256: String,
    /// The media type sniffed from the bytes (falling back to the declared one).
    pub media_type: String,
    /// Visible text (HTML rendered to text, charset converted to UTF-8) for `body` rules.
    pub text: String,
    /// The whole body as UTF-8 (markup kept) for `rawbody` rules.
    pub raw_text: String,
    /// URIs found in href/src attributes and plain text (relative ones left unresolved: a
    /// verdict depends on the body and its reading alone).
    pub uris: Vec<String>,
    /// Response header fields (lowercase name, value).
    pub headers: Vec<(String, String)>,
    /// The request URL, when known.
    pub url: Option<String>,
}

impl Document {
    /// True when the body is an image format the PDQ hasher can decode.
    pub fn is_image(&self) -> bool {
        self.media_type.starts_with("image/")
    }

    /// True when the body is text-like (HTML, plain text, XML, JSON, mail).
    pub fn is_text(&self) -> bool {
        self.media_type.starts_with("text/")
            || self.media_type.ends_with("+xml")
            || matches!(
                self.media_type.as_str(),
                "application/xhtml+xml" | "application/json" | "application/xml" | "message/rfc822"
            )
    }
}

/// The rule name of a hash-list entry in findings and verdicts: its label, else its list.
pub fn list_rule<'a>(label: &'a str, list: &'a str) -> &'a str {
    if label.is_empty() {
        list
    } else {
        label
    }
}

/// The lines of a rule or list file, after any UTF-8 byte-order mark (Windows editors write
/// one; it is not part of the first line).
pub(crate) fn file_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes.split(|b| *b == b'\n')
}

/// One reason a classifier gave for its opinion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `digest`, `pdq`, `rules`, `model`, or `pipeline` for why a body went unscanned.
    pub classifier: String,
    /// The rule name, list label or model name.
    pub rule: String,
    pub score: f64,
    /// A short human-readable explanation.
    pub detail: String,
}

/// The verdict classes, in increasing order of severity for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Clean,
    Unscanned,
    Suspect,
    Spam,
    Listed,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 5] = [
        Class::Clean,
        Class::Unscanned,
        Class::Suspect,
        Class::Spam,
        Class::Listed,
    ];

    /// The lowercase name used in headers, JSON and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Clean => "clean",
            Class::Unscanned => "unscanned",
            Class::Suspect => "suspect",
            Class::Spam => "spam",
            Class::Listed => "listed",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of scanning one body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub sha256: String,
    pub media_type: String,
    pub class: Class,
    pub score: f64,
    pub findings: Vec<Finding>,
    /// The ruleset version (hash of loaded rules, lists and model) that produced it.
    pub ruleset: String,
    /// RFC 3339 time of the scan.
    pub scanned_at: String,
    /// Why the body went unscanned (`too_large`, `limit`, `undecodable`, `timeout`, `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the body was read besides its bytes ([`pipeline::reading`]): a memoised verdict is
    /// reused only for the same reading. Empty in verdicts written before it existed, which
    /// match no reading and are scanned again once.
    #[serde(default)]
    pub reading: String,
    /// What is derived from the verdict on first use (see [`Derived`]).
    #[serde(skip)]
    pub derived: Derived,
}

/// Values derived from a verdict once, on first use: its `X-Sluice-Verdict` value
/// (`Verdict::header`) and its scan time in seconds (`Verdict::scanned_secs`, which the memo's
/// age limit reads). A memoised verdict is shared by every cache hit on its body, which
/// would otherwise format and parse them again each time. Not part of what a verdict says:
/// always equal, never serialised, and a clone starts empty (clones are what gets edited,
/// e.g. by the admin retro-match).
#[derive(Default)]
pub struct Derived {
    pub(crate) header: std::sync::OnceLock<Option<http::HeaderValue>>,
    pub(crate) scanned_secs: std::sync::OnceLock<Option<u64>>,
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Derived")
    }
}

/// Why a classifier could not give an opinion; the pipeline turns it into `unscanned`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A size, ratio, dimension or backtracking limit was hit.
    #[error("limit: {0}")]
    Limit(String),
    /// The body could not be decoded (bad image, bad compression).
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// The scan ran out of time.
    #[error("timeout")]
    Timeout,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl ScanError {
    /// The `reason=` token for `X-Sluice-Verdict`.
    pub fn reason(&self) -> &'static str {
        match self {
            ScanError::Limit(_) => "limit",
            ScanError::Undecodable(_) => "undecodable",
            ScanError::Timeout => "timeout",
            ScanError::Other(_) => "error",
        }
    }
}

/// One classifier of the pipeline. Implementations are pure CPU work over a `Document`
/// and are called on worker threads, never on the reactor.
pub trait Classifier: Send + Sync {
    /// Short name used in findings and metrics (`digest`, `pdq`, `rules`, `model`).
    fn name(&self) -> &'static str;

    /// Findings for this document; an empty vector means "nothing to report".
    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError>;

    /// A stable fingerprint of what this classifier has loaded (rules, lists, model), so a
    /// verdict can name the ruleset version that produced it.
    fn fingerprint(&self) -> String;

    /// The response header fields its findings depend on (none unless it says so): part of a
    /// body's reading, so a memoised verdict is not reused under other values of them.
    fn header_use(&self) -> HeaderUse {
        HeaderUse::default()
    }
}

/// Response header fields a classifier reads ([`Classifier::header_use`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderUse {
    /// These fields: lowercase names, sorted, without repeats (usually none).
    Fields(Vec<String>),
    /// Every field.
    All,
}

impl Default for HeaderUse {
    fn default() -> Self {
        HeaderUse::Fields(Vec::new())
    }
}

impl HeaderUse {
    /// The fields either reads.
    pub fn union(self, other: HeaderUse) -> HeaderUse {
        match (self, other) {
            (HeaderUse::Fields(mut a), HeaderUse::Fields(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                HeaderUse::Fields(a)
            }
            _ => HeaderUse::All,
        }
    }
}

/// A problem in a rule, list or model file, shown as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: std::path::PathBuf,
    /// 1-based line; 0 when the problem is the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// What a classifier loader returns: the classifier and any warnings, or the errors.
pub type Loaded<T> = Result<(T, Vec<LoadError>), Vec<LoadError>>;

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
