//! Configuration: TOML text → [`RawConfig`] (serde, unknown keys rejected) → validated [`Config`].
//!
//! Every key is optional; the embedded defaults are what `sluice serve` runs on with no file.
//! Leaf values (durations, sizes, CIDRs, addresses) are parsed during deserialisation so that a
//! bad value is reported with its key and line by the TOML parser itself.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A configuration problem, always naming the key (and the line when the file has one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a bad value (the message names key and line).
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Values that parse but would break sluice, alone or together.
    #[error("{path}: {}{key}: {message}", line.map(|n| format!("line {n}: ")).unwrap_or_default())]
    Invalid {
        path: String,
        /// The line of `key` in the file (or of the key it conflicts with), when it is there.
        line: Option<usize>,
        key: &'static str,
        message: String,
    },
}

/// A byte count written as `"8MiB"`, `"64KiB"`, `"10GiB"`, `"1000"` or `"1.5MB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let bad_number =
            || format!("invalid size {s:?}: expected a number and a unit like \"8MiB\"");
        let out_of_range = || format!("size {s:?} is out of range");
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
                ))
            }
        };
        // Whole numbers exactly (an f64 rounds above 2^53, and `as u64` saturates silently).
        if !num.contains('.') {
            let n: u64 = match num.parse() {
                Ok(n) => n,
                Err(_) if !num.is_empty() => return Err(out_of_range()),
                Err(_) => return Err(bad_number()),
            };
            return n.checked_mul(mult).map(ByteSize).ok_or_else(out_of_range);
        }
        let num: f64 = num.parse().map_err(|_| bad_number())?;
        let bytes = num * mult as f64;
        // `u64::MAX as f64` is 2^64, itself out of range.
        if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
            return Err(out_of_range());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

fn de_from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// A size: a string (`"8MiB"`, `"1000"`) or a TOML integer, the plain number of bytes the
/// configuration reference allows (`max_size = 1048576`).
fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = ByteSize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like \"8MiB\" or a whole number of bytes")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
            s.parse().map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
            Ok(ByteSize(n))
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
            u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| E::custom(format!("size {n} is negative")))
        }
    }
    d.deserialize_any(Size)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// The longest duration a key takes: timers add durations to `Instant::now()`, which panics on
/// overflow, so `"18446744073709551615s"` must not get that far.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86400);

/// Parses `"30s"`, `"5m"`, `"1h"`, `"250ms"`, `"1m30s"` (at most [`MAX_DURATION`]).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected a number and a unit like \"30s\", \"5m\", \"250ms\""
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[u_end..];
    }
    if total > MAX_DURATION {
        return Err(format!(
            "duration {s:?} is too long (at most 3650 days, about 10 years)"
        ));
    }
    Ok(total)
}

fn de_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| parse_net(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Parses a CIDR (`10.0.0.0/8`) or a bare address (a /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR {s:?}"))
}

/// The whole configuration, validated and typed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub upstream: UpstreamConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub scan: ScanConfig,
}

/// `[proxy]`: the client-facing listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    #[serde(deserialize_with = "de_from_str")]
    pub listen: SocketAddr,
    #[serde(deserialize_with = "de_nets")]
    pub clients: Vec<IpNet>,
    pub connect_ports: Vec<u16>,
    #[serde(deserialize_with = "de_duration")]
    pub header_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// A CONNECT tunnel with no bytes either way for this long is closed (Squid's
    /// `read_timeout`, 15 minutes, covers its tunnels the same way).
    #[serde(deserialize_with = "de_duration")]
    pub tunnel_idle_timeout: Duration,
    pub max_connections: usize,
    #[serde(deserialize_with = "de_size")]
    pub max_request_line: ByteSize,
    #[serde(deserialize_with = "de_size")]
    pub max_header_size: ByteSize,
    pub max_headers: usize,
    /// Largest trailer section of a chunked request body; larger: 431.
    #[serde(deserialize_with = "de_size")]
    pub max_trailer_size: ByteSize,
    /// Tokio worker threads; 0 means one per core.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3128)),
            clients: vec![
                "127.0.0.0/8".parse().expect("literal CIDR"),
                "::1/128".parse().expect("literal CIDR"),
            ],
            connect_ports: vec![443],
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(15 * 60),
            max_connections: 16384,
            max_request_line: ByteSize(8 << 10),
            max_header_size: ByteSize(64 << 10),
            max_headers: 100,
            max_trailer_size: ByteSize(16 << 10),
            workers: 0,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `[upstream]`: how sluice reaches origins and parents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    #[serde(deserialize_with = "de_nets")]
    pub allow: Vec<IpNet>,
    pub ca_file: String,
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub response_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub body_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Largest response head accepted from an upstream (larger: 502).
    #[serde(deserialize_with = "de_size")]
    pub max_header_size: ByteSize,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Idle pooled connections kept in all (the oldest is closed beyond it).
    pub pool_max_idle: usize,
    /// How long a parent that failed is skipped.
    #[serde(deserialize_with = "de_duration")]
    pub parent_down_for: Duration,
    pub parents: Vec<ParentConfig>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            allow: Vec::new(),
            ca_file: String::new(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(90),
            max_header_size: ByteSize(64 << 10),
            pool_max_idle_per_host: 64,
            pool_max_idle: 1024,
            parent_down_for: Duration::from_secs(30),
            parents: Vec::new(),
        }
    }
}

/// `[[upstream.parents]]`: a group of parent proxies for some domains.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentConfig {
    /// Host suffixes this entry applies to; empty matches every host.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(deserialize_with = "de_addrs")]
    pub proxies: Vec<HostPort>,
    #[serde(default = "yes")]
    pub go_direct: bool,
}

fn yes() -> bool {
    true
}

fn de_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HostPort>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// A `host:port` pair where the host may be a name or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid address {s:?}: expected host:port");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `[admin]`: the admin API listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    #[serde(deserialize_with = "de_from_str")]
    pub listen: SocketAddr,
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3129)),
            token: String::new(),
        }
    }
}

/// `[store]`: the sled database and the memory tier.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    #[serde(deserialize_with = "de_size")]
    pub max_size: ByteSize,
    #[serde(deserialize_with = "de_size")]
    pub memory: ByteSize,
    /// How long the verdict history is kept: a URL record (`urls`) for this long after its
    /// fetch, a verdict for twice this after its scan; a memoised verdict is reused for this
    /// long after its scan, then the body is scanned again (`store::retention`).
    #[serde(deserialize_with = "de_duration")]
    pub verdict_retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("sluice-data"),
            max_size: ByteSize(10 << 30),
            memory: ByteSize(256 << 20),
            verdict_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Whether bodies are scanned before the client sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// Buffer (up to `max_body`), scan, then act on the verdict.
    Enforce,
    /// Stream to the client at once and scan a copy.
    Observe,
}

/// What happens to a response of a given class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Block,
    Tag,
    Log,
}

/// `[scan.action]`: the action per verdict class.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    pub listed: Action,
    pub spam: Action,
    pub suspect: Action,
    pub unscanned: Action,
    pub clean: Action,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            listed: Action::Block,
            spam: Action::Block,
            suspect: Action::Tag,
            unscanned: Action::Tag,
            clean: Action::Tag,
        }
    }
}

/// `[scan]`: the classifier pipeline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    pub rules: PathBuf,
    pub models: PathBuf,
    pub hash_lists: PathBuf,
    #[serde(deserialize_with = "de_size")]
    pub max_body: ByteSize,
    pub mode: ScanMode,
    pub spam_threshold: f64,
    pub suspect_threshold: f64,
    /// Weight of the text model's score when added to the rule score.
    pub model_weight: f64,
    pub pdq_distance: u32,
    pub pdq_min_quality: u8,
    /// Largest image (width × height) that is decoded for hashing.
    pub max_image_pixels: u64,
    /// Largest decoded/compressed ratio before a body counts as a bomb.
    pub max_decode_ratio: u64,
    /// Scan jobs running at once (0 = one per core).
    pub workers: usize,
    /// Scan jobs waiting for a worker before new ones are refused.
    pub queue: usize,
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub action: ActionConfig,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            rules: PathBuf::from("rules"),
            models: PathBuf::from("models"),
            hash_lists: PathBuf::from("data/hashes"),
            max_body: ByteSize(8 << 20),
            mode: ScanMode::Enforce,
            spam_threshold: 5.0,
            suspect_threshold: 2.5,
            model_weight: 1.0,
            pdq_distance: 31,
            pdq_min_quality: 50,
            max_image_pixels: 64_000_000,
            max_decode_ratio: 1000,
            workers: 0,
            queue: 1024,
            timeout: Duration::from_secs(10),
            action: ActionConfig::default(),
        }
    }
}

/// Upper bounds of numeric keys, beyond which sluice would panic or exhaust the machine.
pub const MAX_CONNECTIONS: usize = u32::MAX as usize;
/// See [`MAX_CONNECTIONS`].
pub const MAX_HEADERS: usize = 10_000;
/// See [`MAX_CONNECTIONS`].
pub const MAX_WORKERS: usize = 1024;
/// Largest magnitude of `scan.spam_threshold`, `scan.suspect_threshold`, `scan.model_weight`.
pub const MAX_SCORE: f64 = 1e6;

/// A value [`Config::check`] refuses: the key, which of its occurrences (array tables), a key
/// whose line to show when `key` itself is not in the file, and what is wrong.
struct Problem {
    key: &'static str,
    nth: usize,
    also: Option<&'static str>,
    message: String,
}

/// A problem with `key` itself (its first occurrence).
fn invalid(key: &'static str, message: &str) -> Problem {
    Problem {
        key,
        nth: 0,
        also: None,
        message: message.to_string(),
    }
}

impl Problem {
    fn into_error(self, origin: &str, line: Option<usize>) -> Error {
        Error::Invalid {
            path: origin.to_string(),
            line,
            key: self.key,
            message: self.message,
        }
    }
}

/// Whether two listen addresses cannot both be bound: the same port (not 0, which picks a
/// free one) on the same address, or under a wildcard that covers the other (`[::]` is
/// dual-stack).
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers =
        |w: SocketAddr, o: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4());
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// What a configuration is loaded for: `serve` needs all of it, the offline commands all
/// but the admin API's credentials.
#[derive(Clone, Copy)]
enum Use {
    Serve,
    Offline,
}

/// Whether a parent proxy at `parent` is one of sluice's own listeners at `listen`: the same
/// port (not 0) on the same address, a loopback one (or `localhost`) under a loopback or
/// wildcard listener. A name other than `localhost` is not resolved here.
fn parent_is_listener(parent: &HostPort, listen: SocketAddr) -> bool {
    if parent.port != listen.port() || listen.port() == 0 {
        return false;
    }
    let local = listen.ip().is_unspecified() || listen.ip().is_loopback();
    if parent.host.eq_ignore_ascii_case("localhost") {
        return local;
    }
    let Ok(ip) = parent.host.parse::<std::net::IpAddr>() else {
        return false;
    };
    ip == listen.ip()
        || (listen.ip().is_unspecified()
            && (ip.is_loopback() || ip.is_unspecified())
            && (listen.is_ipv6() || ip.is_ipv4()))
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        Config::load_checked(path, Use::Serve)
    }

    /// Reads and validates a config file for the offline commands (`sluice scan`): all of it
    /// but the admin API's credentials, which they never use. The token often comes from
    /// `SLUICE_ADMIN_TOKEN` in the service's environment only, and a shell without it must
    /// still be able to scan with the production file.
    pub fn load_offline(path: &Path) -> Result<Config, Error> {
        Config::load_checked(path, Use::Offline)
    }

    fn load_checked(path: &Path, used: Use) -> Result<Config, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
            message: not_utf8(e.as_bytes(), e.utf8_error().valid_up_to()),
            path: origin.clone(),
        })?;
        Config::parse_checked(&text, &origin, used)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, Error> {
        Config::parse_checked(text, origin, Use::Serve)
    }

    fn parse_checked(text: &str, origin: &str, used: Use) -> Result<Config, Error> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_string(),
            message: one_line(&e, text),
        })?;
        let checked = match used {
            Use::Serve => cfg.check(),
            Use::Offline => cfg.check_offline(),
        };
        checked.map_err(|p| {
            let line = line_of(text, p.key, p.nth)
                .or_else(|| p.also.and_then(|also| line_of(text, also, 0)));
            p.into_error(origin, line)
        })?;
        Ok(cfg)
    }

    /// Checks that serde cannot express: values that would break sluice at run time, alone or
    /// together (`origin` names where they came from, e.g. "command line").
    pub fn validate(&self, origin: &str) -> Result<(), Error> {
        self.check().map_err(|p| p.into_error(origin, None))
    }

    fn check(&self) -> Result<(), Problem> {
        self.check_offline()?;
        self.check_admin_token()
    }

    /// Everything [`Config::check`] checks but the admin token.
    fn check_offline(&self) -> Result<(), Problem> {
        // tokio's semaphore takes at most usize::MAX >> 3 permits (it panicked above), and
        // shutdown waits for every slot with one u32-sized acquire.
        if self.proxy.max_connections == 0 || self.proxy.max_connections > MAX_CONNECTIONS {
            return Err(invalid(
                "proxy.max_connections",
                &format!("must be between 1 and {MAX_CONNECTIONS}"),
            ));
        }
        // hyper allocates room for this many fields on every head it parses.
        if self.proxy.max_headers == 0 || self.proxy.max_headers > MAX_HEADERS {
            return Err(invalid(
                "proxy.max_headers",
                &format!("must be between 1 and {MAX_HEADERS}"),
            ));
        }
        // One thread each: 100000 exhausted memory and aborted the process.
        for (key, n) in [
            ("proxy.workers", self.proxy.workers),
            ("scan.workers", self.scan.workers),
        ] {
            if n > MAX_WORKERS {
                return Err(invalid(
                    key,
                    &format!("must be at most {MAX_WORKERS} (0 = one per core)"),
                ));
            }
        }
        for (key, size) in [
            ("proxy.max_request_line", self.proxy.max_request_line),
            ("proxy.max_header_size", self.proxy.max_header_size),
            ("upstream.max_header_size", self.upstream.max_header_size),
        ] {
            if size.0 == 0 {
                return Err(invalid(key, "must be larger than zero"));
            }
        }
        // sled would write into the working directory, and a damaged store is renamed aside.
        if self.store.path.as_os_str().is_empty() {
            return Err(invalid("store.path", "must not be empty"));
        }
        if self.proxy.connect_ports.contains(&0) {
            return Err(invalid("proxy.connect_ports", "port 0 is not a port"));
        }
        for (key, d) in [
            ("proxy.header_timeout", self.proxy.header_timeout),
            ("proxy.idle_timeout", self.proxy.idle_timeout),
            ("proxy.tunnel_idle_timeout", self.proxy.tunnel_idle_timeout),
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.response_timeout", self.upstream.response_timeout),
            ("upstream.body_timeout", self.upstream.body_timeout),
            ("scan.timeout", self.scan.timeout),
            ("store.verdict_retention", self.store.verdict_retention),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        for (nth, p) in self.upstream.parents.iter().enumerate() {
            if p.proxies.is_empty() {
                return Err(Problem {
                    nth,
                    ..invalid("upstream.parents.proxies", "needs at least one host:port")
                });
            }
            // A request sent to sluice itself comes back round (every one a 502 loop), and
            // one sent to the admin API is answered 404: neither can ever be a parent.
            for (own, listen) in [
                ("proxy.listen", self.proxy.listen),
                ("admin.listen", self.admin.listen),
            ] {
                if let Some(hop) = p.proxies.iter().find(|h| parent_is_listener(h, listen)) {
                    return Err(Problem {
                        nth,
                        ..invalid(
                            "upstream.parents.proxies",
                            &format!(
                                "{hop} is sluice's own {own} {listen}: a parent must be another proxy"
                            ),
                        )
                    });
                }
            }
        }
        if listeners_clash(self.proxy.listen, self.admin.listen) {
            return Err(Problem {
                also: Some("proxy.listen"),
                ..invalid(
                    "admin.listen",
                    &format!(
                        "{} overlaps proxy.listen {}: the two listeners need different addresses",
                        self.admin.listen, self.proxy.listen
                    ),
                )
            });
        }
        // A body with no finding scores 0 and must stay clean; the model's score is
        // model_weight × spam_threshold × up to 1.6, which must stay a finite number.
        for (key, v) in [
            ("scan.spam_threshold", self.scan.spam_threshold),
            ("scan.suspect_threshold", self.scan.suspect_threshold),
        ] {
            if !(v > 0.0 && v <= MAX_SCORE) {
                return Err(invalid(
                    key,
                    &format!("must be a number above 0 and at most {MAX_SCORE}"),
                ));
            }
        }
        if self.scan.model_weight.is_nan() || self.scan.model_weight.abs() > MAX_SCORE {
            return Err(invalid(
                "scan.model_weight",
                &format!("must be a number between -{MAX_SCORE} and {MAX_SCORE}"),
            ));
        }
        let (suspect, spam) = (self.scan.suspect_threshold, self.scan.spam_threshold);
        if suspect > spam {
            return Err(Problem {
                also: Some("scan.spam_threshold"),
                ..invalid(
                    "scan.suspect_threshold",
                    "must not be above scan.spam_threshold",
                )
            });
        }
        if self.scan.pdq_distance > 256 {
            return Err(invalid("scan.pdq_distance", "must be between 0 and 256"));
        }
        if self.scan.pdq_min_quality > 100 {
            return Err(invalid("scan.pdq_min_quality", "must be between 0 and 100"));
        }
        Ok(())
    }

    /// The admin token (from the file or `SLUICE_ADMIN_TOKEN`) can be sent and is there when
    /// the admin API is reachable from other hosts.
    fn check_admin_token(&self) -> Result<(), Problem> {
        let token = self.admin_token();
        // A client sends the token in a header field, which cannot carry control characters
        // or non-ASCII text as a string: such a token could never be matched, and a blank one
        // would silently turn authentication off.
        if token.is_empty() && !self.raw_admin_token().is_empty() {
            return Err(invalid(
                "admin.token",
                "is only whitespace (or SLUICE_ADMIN_TOKEN is)",
            ));
        }
        if !token.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(invalid(
                "admin.token",
                "must be printable ASCII (it is sent in an Authorization header)",
            ));
        }
        if token.is_empty() && !self.admin.listen.ip().is_loopback() {
            return Err(invalid(
                "admin.listen",
                "a non-loopback admin address needs admin.token (or SLUICE_ADMIN_TOKEN)",
            ));
        }
        Ok(())
    }

    /// The admin token: `SLUICE_ADMIN_TOKEN` when set, else `[admin] token`, without
    /// leading and trailing whitespace (a token read from a file or a heredoc often ends in
    /// a newline, which no `Authorization` header can carry: nothing could authenticate).
    pub fn admin_token(&self) -> String {
        self.raw_admin_token().trim().to_string()
    }

    fn raw_admin_token(&self) -> String {
        match std::env::var("SLUICE_ADMIN_TOKEN") {
            Ok(t) if !t.is_empty() => t,
            _ => self.admin.token.clone(),
        }
    }
}

/// Where a config file stops being UTF-8 (TOML files are UTF-8), as line and column.
fn not_utf8(bytes: &[u8], valid_up_to: usize) -> String {
    // Everything before `valid_up_to` is UTF-8, so lines and columns count characters.
    let before = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
    let line = 1 + before.matches('\n').count();
    let column = 1 + before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count();
    format!("line {line}, column {column}: not UTF-8 (a TOML file must be UTF-8 text)")
}

/// toml's errors span several lines with a source excerpt; keep the location and the message.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let first = e.to_string();
    let loc = match first.lines().next() {
        Some(l) if l.starts_with("TOML parse error at ") => {
            l.trim_start_matches("TOML parse error at ").to_string()
        }
        _ => return msg,
    };
    match e.span().and_then(|span| key_at(text, span.start)) {
        Some(key) => format!("{loc}: key `{key}`: {msg}"),
        None => format!("{loc}: {msg}"),
    }
}

/// The dotted key (`section.name`) assigned on the line holding byte `at`, or the table a
/// `[section]` / `[[section]]` line opens.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    if let Some(table) = table_header(line) {
        return Some(table);
    }
    let name = assigned_name(line)?;
    let section = before[..line_start].lines().rev().find_map(table_header);
    Some(full_key(section.as_deref(), &name))
}

/// The line (1-based) of the `nth` assignment of the dotted `key`, if the file has it.
fn line_of(text: &str, key: &str, nth: usize) -> Option<usize> {
    let mut section: Option<String> = None;
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        if let Some(table) = table_header(line) {
            section = Some(table);
            continue;
        }
        let Some(name) = assigned_name(line) else {
            continue;
        };
        if full_key(section.as_deref(), &name) == key {
            if seen == nth {
                return Some(i + 1);
            }
            seen += 1;
        }
    }
    None
}

/// The table a `[a.b]` or `[[a.b]]` line opens (a comment may follow).
fn table_header(line: &str) -> Option<String> {
    let line = line.trim();
    let (open, close) = if line.starts_with("[[") {
        ("[[", "]]")
    } else if line.starts_with('[') {
        ("[", "]")
    } else {
        return None;
    };
    let inner = &line[open.len()..];
    let end = inner.find(close)?;
    let rest = inner[end + close.len()..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    Some(dotted(&inner[..end]))
}

/// The (possibly dotted) name a `name = value` line assigns.
fn assigned_name(line: &str) -> Option<String> {
    let (name, _) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || name.starts_with('[') || name.starts_with('#') {
        return None;
    }
    Some(dotted(name))
}

/// `a . "b"` → `a.b`.
fn dotted(name: &str) -> String {
    name.split('.')
        .map(|part| part.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect::<Vec<_>>()
        .join(".")
}

fn full_key(section: Option<&str>, name: &str) -> String {
    match section {
        Some(sec) if !sec.is_empty() => format!("{sec}.{name}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, b"[proxy]\n# caf\xc3\xa9\nlisten = \"a\xffb\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("line 3, column 12: not UTF-8"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let err = Config::parse("[proxy]\nidle_timeout = \"banana\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `proxy.idle_timeout`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[scan]\nmodel_weight = \"x\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `scan.model_weight`"), "{err}");
    }

    #[test]
    fn empty_file_gives_the_embedded_defaults() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.proxy.listen, "127.0.0.1:3128".parse().unwrap());
        assert_eq!(c.admin.listen, "127.0.0.1:3129".parse().unwrap());
        assert_eq!(c.store.path, PathBuf::from("sluice-data"));
        assert_eq!(c.proxy.connect_ports, vec![443]);
        assert_eq!(c.scan.max_body, ByteSize(8 << 20));
        assert_eq!(c.scan.action.spam, Action::Block);
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"
[proxy]
listen = "127.0.0.1:3128"
clients = ["127.0.0.0/8", "::1/128"]
connect_ports = [443]
header_timeout = "10s"
idle_timeout = "60s"
max_connections = 16384
max_request_line = "8KiB"
max_header_size = "64KiB"
max_headers = 100

[upstream]
allow = []
ca_file = ""
connect_timeout = "5s"
response_timeout = "30s"
body_timeout = "5m"
idle_timeout = "90s"

[[upstream.parents]]
domains = ["cdn.example"]
proxies = ["127.0.0.1:8081"]
go_direct = true

[admin]
listen = "127.0.0.1:3129"
token = ""

[store]
path = "sluice-data"
max_size = "10GiB"
memory = "256MiB"

[scan]
rules = "rules"
models = "models"
hash_lists = "data/hashes"
max_body = "8MiB"
mode = "enforce"
spam_threshold = 5.0
suspect_threshold = 2.5
[scan.action]
spam = "block"
suspect = "tag"
"#;
        let c = Config::parse(text, "t").unwrap();
        assert_eq!(c.upstream.body_timeout, Duration::from_secs(300));
        assert_eq!(c.upstream.parents[0].proxies[0].port, 8081);
        assert_eq!(c.store.max_size, ByteSize(10 << 30));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[proxy]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        for (text, needle) in [
            ("[proxy]\nidle_timeout = \"ten\"\n", "line 2"),
            ("[store]\n\nmax_size = \"3 parsecs\"\n", "line 3"),
            ("[proxy]\nclients = [\"10.0.0.0/33\"]\n", "10.0.0.0/33"),
            ("[proxy]\nlisten = \"nowhere\"\n", "line 2"),
            (
                "[upstream]\n[[upstream.parents]]\nproxies = [\"a\"]\n",
                "host:port",
            ),
            ("[scan]\nmode = \"maybe\"\n", "line 2"),
        ] {
            let err = Config::parse(text, "f.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn non_loopback_admin_needs_a_token() {
        std::env::remove_var("SLUICE_ADMIN_TOKEN");
        let err = Config::parse("[admin]\nlisten = \"0.0.0.0:3129\"\n", "f").unwrap_err();
        assert!(err.to_string().contains("admin.listen"));
        assert!(Config::parse("[admin]\nlisten = \"0.0.0.0:3129\"\ntoken = \"s\"\n", "f").is_ok());
    }

    #[test]
    fn the_admin_token_is_trimmed_and_must_be_sendable() {
        std::env::remove_var("SLUICE_ADMIN_TOKEN");
        let cfg = Config::parse("[admin]\ntoken = \"s3cret\\n\"\n", "f").unwrap();
        assert_eq!(cfg.admin_token(), "s3cret");
        for (text, needle) in [
            (
                "[admin]\ntoken = \" \\n\"\n",
                "line 2: admin.token: is only whitespace",
            ),
            (
                "[admin]\ntoken = \"caf\u{e9}\"\n",
                "line 2: admin.token: must be printable",
            ),
            (
                "[admin]\ntoken = \"a\\tb\"\n",
                "line 2: admin.token: must be printable",
            ),
        ] {
            let err = Config::parse(text, "f").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_size_may_be_a_plain_integer_of_bytes() {
        let cfg = Config::parse(
            "[store]\nmax_size = 1048576\nmemory = \"0\"\n[scan]\nmax_body = 0\n",
            "f",
        )
        .unwrap();
        assert_eq!(cfg.store.max_size, ByteSize(1 << 20));
        assert_eq!((cfg.store.memory.0, cfg.scan.max_body.0), (0, 0));
        for (text, needle) in [
            ("[store]\nmax_size = -1\n", "line 2"),
            ("[store]\nmax_size = 1.5\n", "line 2"),
            (
                "[proxy]\nmax_request_line = 0\n",
                "line 2: proxy.max_request_line",
            ),
        ] {
            let err = Config::parse(text, "f").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn max_trailer_size_defaults_to_16_kib_and_is_configurable() {
        assert_eq!(Config::default().proxy.max_trailer_size, ByteSize(16 << 10));
        let c = Config::parse("[proxy]\nmax_trailer_size = \"4KiB\"\n", "t").unwrap();
        assert_eq!(c.proxy.max_trailer_size, ByteSize(4 << 10));
    }

    #[test]
    fn durations_that_overflow_an_instant_are_refused() {
        // `Instant::now() + d` panics for these (body_timeout, scan.timeout, parent_down_for...).
        for text in [
            "[upstream]\nbody_timeout = \"18446744073709551615s\"\n",
            "[scan]\ntimeout = \"999999999999999d\"\n",
            "[upstream]\nparent_down_for = \"307445734561825860m\"\n",
        ] {
            let err = Config::parse(text, "f.toml").unwrap_err().to_string();
            assert!(err.contains("line 2"), "{text:?}: {err}");
            assert!(err.contains("too long"), "{text:?}: {err}");
        }
        assert_eq!(
            parse_duration("3650d").unwrap(),
            Duration::from_secs(3650 * 86400)
        );
    }

    #[test]
    fn sizes_beyond_u64_are_refused_not_saturated() {
        assert!("18446744073709551616".parse::<ByteSize>().is_err());
        assert!("16777216TiB".parse::<ByteSize>().is_err());
        assert_eq!(
            "18446744073709551615".parse::<ByteSize>().unwrap(),
            ByteSize(u64::MAX)
        );
        assert_eq!(
            "9007199254740993".parse::<ByteSize>().unwrap(),
            ByteSize(9_007_199_254_740_993)
        );
    }

    #[test]
    fn values_that_would_panic_or_break_the_proxy_are_refused() {
        std::env::remove_var("SLUICE_ADMIN_TOKEN");
        for (text, key) in [
            // tokio's Semaphore panics above usize::MAX >> 3 permits.
            (
                "[proxy]\nmax_connections = 9223372036854775807\n",
                "proxy.max_connections",
            ),
            // hyper allocates room for max_headers fields on every parse: capacity overflow.
            (
                "[proxy]\nmax_headers = 9223372036854775807\n",
                "proxy.max_headers",
            ),
            // a thread per worker: 100000 aborted the process.
            ("[proxy]\nworkers = 100000\n", "proxy.workers"),
            ("[scan]\nworkers = 9223372036854775807\n", "scan.workers"),
            // zero: every request 414 / 431, every response 502.
            (
                "[proxy]\nmax_request_line = \"0\"\n",
                "proxy.max_request_line",
            ),
            (
                "[proxy]\nmax_header_size = \"0\"\n",
                "proxy.max_header_size",
            ),
            (
                "[upstream]\nmax_header_size = \"0\"\n",
                "upstream.max_header_size",
            ),
            // sled's files landed in the working directory, among whatever else is there.
            ("[store]\npath = \"\"\n", "store.path"),
            // the two listeners cannot share an address.
            ("[admin]\nlisten = \"127.0.0.1:3128\"\n", "admin.listen"),
            ("[proxy]\nlisten = \"0.0.0.0:3129\"\n", "admin.listen"),
            // score 0 (no finding) would be spam: every response blocked.
            (
                "[scan]\nspam_threshold = 0.0\nsuspect_threshold = 0.0\n",
                "scan.spam_threshold",
            ),
            (
                "[scan]\nsuspect_threshold = -1.0\n",
                "scan.suspect_threshold",
            ),
            // the model's score is weight × threshold × up to 1.6: inf/NaN, "score":null.
            ("[scan]\nspam_threshold = inf\n", "scan.spam_threshold"),
            ("[scan]\nspam_threshold = 1e308\n", "scan.spam_threshold"),
            ("[scan]\nmodel_weight = nan\n", "scan.model_weight"),
        ] {
            let err = Config::parse(text, "f.toml").unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
        for ok in [
            "[proxy]\nmax_connections = 4294967295\nmax_headers = 10000\nworkers = 1024\n",
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            "[proxy]\nlisten = \"0.0.0.0:3128\"\n[admin]\nlisten = \"[::1]:3128\"\n",
            "[proxy]\nmax_request_line = \"16KiB\"\nmax_header_size = \"4KiB\"\n",
            "[scan]\nmodel_weight = 0.0\nspam_threshold = 1000.0\n",
        ] {
            assert!(Config::parse(ok, "f.toml").is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_refused_value_names_its_line() {
        let err = Config::parse("[proxy]\n\nmax_headers = 0 # none\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.toml: line 3: proxy.max_headers: must be between 1 and 10000"
        );
        let err = Config::parse("proxy.max_connections = 0\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("f.toml: line 1: proxy.max_connections"),
            "{err}"
        );
        let text =
            "[[upstream.parents]]\nproxies = [\"p:1\"]\n\n[[upstream.parents]]\nproxies = []\n";
        let err = Config::parse(text, "f.toml").unwrap_err().to_string();
        assert!(err.contains("line 5: upstream.parents.proxies"), "{err}");
        // Not in the file (a default the other key conflicts with): the other key's line.
        let err = Config::parse("[proxy]\nlisten = \"127.0.0.1:3129\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: admin.listen"), "{err}");
        let err = Config::parse("[scan]\nspam_threshold = 2.0\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: scan.suspect_threshold"), "{err}");
    }

    #[test]
    fn a_parent_that_is_sluice_itself_is_refused() {
        std::env::remove_var("SLUICE_ADMIN_TOKEN");
        let parents = |p: &str| format!("[[upstream.parents]]\nproxies = [\"{p}\"]\n");
        for (text, needle) in [
            (parents("127.0.0.1:3128"), "own proxy.listen"),
            (parents("localhost:3128"), "own proxy.listen"),
            (parents("127.0.0.1:3129"), "own admin.listen"),
            (
                format!(
                    "[proxy]\nlisten = \"0.0.0.0:8080\"\n\n{}",
                    parents("127.0.0.1:8080")
                ),
                "line 5: upstream.parents.proxies: 127.0.0.1:8080 is sluice's own proxy.listen",
            ),
            (
                format!("[proxy]\nlisten = \"[::]:8080\"\n{}", parents("[::1]:8080")),
                "own proxy.listen",
            ),
        ] {
            let err = Config::parse(&text, "f.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        for ok in [
            parents("127.0.0.1:3130"),
            parents("127.0.0.2:3128"),
            parents("parent.example:3128"),
            format!(
                "[proxy]\nlisten = \"127.0.0.1:0\"\n{}",
                parents("127.0.0.1:0")
            ),
            format!(
                "[proxy]\nlisten = \"0.0.0.0:8080\"\n{}",
                parents("[::1]:8080")
            ),
        ] {
            assert!(Config::parse(&ok, "f.toml").is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn keys_in_commented_and_array_tables_are_named_right() {
        let err = Config::parse(
            "[scan.action]            # block | tag | log per class\nspam = \"nuke\"\n",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key `scan.action.spam`"), "{err}");
        let err = Config::parse(
            "[upstream]\n[[upstream.parents]]\nproxies = [\"a\"]\n",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key `upstream.parents.proxies`"), "{err}");
        let err = Config::parse("[[upstream.parents]]\ndomains = []\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`upstream.parents`"), "{err}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!("8MiB".parse::<ByteSize>().unwrap(), ByteSize(8 << 20));
        assert_eq!("64 KiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 10));
        assert_eq!("1000".parse::<ByteSize>().unwrap(), ByteSize(1000));
        assert_eq!("1.5MB".parse::<ByteSize>().unwrap(), ByteSize(1_500_000));
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("-1".parse::<ByteSize>().is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }
}
