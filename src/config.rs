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
    /// Values that parse but do not make sense together.
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
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
        let num: f64 = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected a number and a unit like \"8MiB\"")
        })?;
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
        let bytes = num * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("size {s:?} is out of range"));
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

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Parses `"30s"`, `"5m"`, `"1h"`, `"250ms"`, `"1m30s"`.
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
    #[serde(deserialize_with = "de_from_str")]
    pub max_request_line: ByteSize,
    #[serde(deserialize_with = "de_from_str")]
    pub max_header_size: ByteSize,
    pub max_headers: usize,
    /// Largest trailer section of a chunked request body; larger: 431.
    #[serde(deserialize_with = "de_from_str")]
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
    #[serde(deserialize_with = "de_from_str")]
    pub max_header_size: ByteSize,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
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
    #[serde(deserialize_with = "de_from_str")]
    pub max_size: ByteSize,
    #[serde(deserialize_with = "de_from_str")]
    pub memory: ByteSize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("sluice-data"),
            max_size: ByteSize(10 << 30),
            memory: ByteSize(256 << 20),
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
    #[serde(deserialize_with = "de_from_str")]
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

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, Error> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_string(),
            message: one_line(&e, text),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self, origin: &str) -> Result<(), Error> {
        let invalid = |key, message: &str| Error::Invalid {
            path: origin.to_string(),
            key,
            message: message.to_string(),
        };
        if self.proxy.max_connections == 0 {
            return Err(invalid("proxy.max_connections", "must be at least 1"));
        }
        if self.proxy.max_headers == 0 {
            return Err(invalid("proxy.max_headers", "must be at least 1"));
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
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        for p in &self.upstream.parents {
            if p.proxies.is_empty() {
                return Err(invalid(
                    "upstream.parents.proxies",
                    "needs at least one host:port",
                ));
            }
        }
        let (suspect, spam) = (self.scan.suspect_threshold, self.scan.spam_threshold);
        if suspect.is_nan() || spam.is_nan() || suspect > spam {
            return Err(invalid(
                "scan.suspect_threshold",
                "must not be above scan.spam_threshold",
            ));
        }
        if self.scan.pdq_distance > 256 {
            return Err(invalid("scan.pdq_distance", "must be between 0 and 256"));
        }
        if self.scan.pdq_min_quality > 100 {
            return Err(invalid("scan.pdq_min_quality", "must be between 0 and 100"));
        }
        let token = self.admin_token();
        if token.is_empty() && !self.admin.listen.ip().is_loopback() {
            return Err(invalid(
                "admin.listen",
                "a non-loopback admin address needs admin.token (or SLUICE_ADMIN_TOKEN)",
            ));
        }
        Ok(())
    }

    /// The admin token: `SLUICE_ADMIN_TOKEN` when set, else `[admin] token`.
    pub fn admin_token(&self) -> String {
        match std::env::var("SLUICE_ADMIN_TOKEN") {
            Ok(t) if !t.is_empty() => t,
            _ => self.admin.token.clone(),
        }
    }
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

/// The dotted key (`section.name`) assigned on the line holding byte `at`, if that line is a
/// `name = value` line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (name, _) = line.split_once('=')?;
    let name = name.trim().trim_matches('"');
    if name.is_empty() || name.starts_with('[') {
        return None;
    }
    let section = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match section {
        Some(sec) if !sec.is_empty() => format!("{sec}.{name}"),
        _ => name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn max_trailer_size_defaults_to_16_kib_and_is_configurable() {
        assert_eq!(Config::default().proxy.max_trailer_size, ByteSize(16 << 10));
        let c = Config::parse("[proxy]\nmax_trailer_size = \"4KiB\"\n", "t").unwrap();
        assert_eq!(c.proxy.max_trailer_size, ByteSize(4 << 10));
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
