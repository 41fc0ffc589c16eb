//! Shared support for the admin API tests: a sluice with a private rules directory, and a
//! raw HTTP/1.1 client for the admin listener that parses JSON answers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice::config::Config;

use crate::common::{self, Client, Sluice};

/// The rule every test directory starts with: "you have won" scores 6 (spam).
pub const WON_RULE: &str = "body ADMIN_TEST_WON /you have won/i\nscore ADMIN_TEST_WON 6.0\n";

/// A temp dir with `rules/` (holding [`WON_RULE`]), an empty `hashes/` and no models.
pub struct Dirs {
    pub dir: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
        std::fs::create_dir(dir.path().join("hashes")).expect("hashes dir");
        std::fs::write(dir.path().join("rules/test.cf"), WON_RULE).expect("rule file");
        Dirs { dir }
    }

    pub fn rules(&self) -> PathBuf {
        self.dir.path().join("rules")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test config pointed at these directories, with `token` as admin token.
    pub fn config(&self, token: &str) -> Config {
        let mut cfg = common::config();
        cfg.scan.rules = self.rules();
        cfg.scan.hash_lists = self.dir.path().join("hashes");
        cfg.scan.models = self.dir.path().join("no-models");
        cfg.admin.token = token.to_string();
        cfg
    }
}

/// One admin response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub resp: common::Response,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.resp.header(name)
    }
}

/// A client of the admin listener.
pub struct AdminClient {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl AdminClient {
    pub fn of(s: &Sluice, token: Option<&str>) -> AdminClient {
        AdminClient {
            addr: s.running.as_ref().expect("running").admin_addr,
            token: token.map(str::to_string),
        }
    }

    /// Sends `method path` with an optional body and extra header lines.
    pub async fn send(&self, method: &str, path: &str, body: &[u8], extra: &[&str]) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n");
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for h in extra {
            head.push_str(h);
            head.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let mut c = Client::connect(self.addr).await;
        let resp = c.exchange(bytes).await;
        let json = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Answer {
            status: resp.status(),
            resp,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, b"", &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send("POST", path, body.to_string().as_bytes(), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, b"", &[]).await
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The class in a proxied response's `X-Sluice-Verdict` header.
pub fn verdict_class(resp: &common::Response) -> String {
    resp.header("x-sluice-verdict")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The `sha256=` of a proxied response's `X-Sluice-Verdict` header.
pub fn verdict_sha(resp: &common::Response) -> String {
    resp.header("x-sluice-verdict")
        .unwrap_or("")
        .split(';')
        .find_map(|p| p.trim().strip_prefix("sha256=").map(str::to_string))
        .unwrap_or_default()
}

/// One `/metrics` scrape, parsed as Prometheus text by a parser crate.
pub async fn scrape(c: &AdminClient) -> prometheus_parse::Scrape {
    let a = c.get("/metrics").await;
    assert_eq!(a.status, 200);
    assert!(a
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let text = a.resp.text();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

/// The sum of the scalar samples of `metric` whose labels include all of `labels` (0 when
/// there are none: counters with a label set appear once they move).
pub fn total(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .sum()
}

/// Whether a family named `metric` is declared (HELP/TYPE) in the scrape.
pub fn declared(s: &prometheus_parse::Scrape, metric: &str) -> bool {
    s.docs.contains_key(metric)
}

/// The cumulative buckets (`le`, count) of histogram `metric` with `labels`.
pub fn buckets(
    s: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .and_then(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => {
                Some(h.iter().map(|b| (b.less_than, b.count)).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// A cacheable (`max-age=600`) `200 OK` with `content_type` and `body`.
pub fn cacheable(content_type: &str, body: &[u8]) -> Vec<u8> {
    common::cache::answer(
        "200 OK",
        &[
            &format!("Content-Type: {content_type}"),
            "Cache-Control: max-age=600",
        ],
        body,
    )
}

/// [`cacheable`] plain text.
pub fn cacheable_text(body: &str) -> Vec<u8> {
    cacheable("text/plain", body.as_bytes())
}

/// A test image from `tests/data/pdq/images`.
pub fn image(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pdq/images")
        .join(rel);
    std::fs::read(p).expect("test image")
}
