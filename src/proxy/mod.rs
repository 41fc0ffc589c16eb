//! The client side: accepting connections, handling each request, CONNECT tunnels.
//!
//! `listen` accepts and applies the client ACL, connection cap and timeouts; `handle` runs
//! the phases of one request; `headers` strips hop-by-hop fields; `target` parses the
//! request-target; `tunnel` splices CONNECT; `error` maps every failure to a response;
//! `headcheck` rejects ambiguous request heads before hyper parses them; `upload` bounds
//! a request body's trailers.

pub mod cached;
pub mod conn;
pub mod error;
pub mod fetch;
pub mod handle;
pub mod headcheck;
pub mod headers;
pub mod listen;
pub mod respond;
pub mod target;
pub mod tunnel;
pub mod upload;

use crate::cache::collapse::Collapser;
use crate::cache::store::Cache;
use crate::config::{ProxyConfig, ScanConfig, UpstreamConfig};
use crate::scan::pipeline::Pipeline;
use crate::store::Store;
use crate::upstream;

/// Everything a request handler needs, shared by all connections.
pub struct Proxy {
    pub cfg: ProxyConfig,
    pub upstream_cfg: UpstreamConfig,
    pub scan_cfg: ScanConfig,
    pub upstream: upstream::Client,
    pub cache: Cache,
    /// In-flight misses by key; the value tells followers whether the leader stored it.
    pub collapser: Collapser<bool>,
    pub pipeline: Pipeline,
    /// Observe mode's responses whose body copy waits for a scan (and a store) after the
    /// response: at most the pipeline's capacity, since no client waits for them.
    pub observing: std::sync::Arc<tokio::sync::Semaphore>,
    pub store: Store,
    /// Counters for the admin API's `/metrics`.
    pub metrics: crate::admin::metrics::ProxyMetrics,
    /// Serialises runtime hash-list edits and reloads, so that an entry added during a
    /// reload reaches the new classifiers too.
    pub list_edits: std::sync::Mutex<()>,
}
