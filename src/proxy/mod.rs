//! The client side: accepting connections, handling each request, CONNECT tunnels.
//!
//! `listen` accepts and applies the client ACL, connection cap and timeouts; `handle` runs
//! the phases of one request; `headers` strips hop-by-hop fields; `target` parses the
//! request-target; `tunnel` splices CONNECT; `error` maps every failure to a response.

pub mod conn;
pub mod error;
pub mod handle;
pub mod headers;
pub mod listen;
pub mod target;
pub mod tunnel;

use crate::config::ProxyConfig;
use crate::upstream;

/// Everything a request handler needs, shared by all connections.
pub struct Proxy {
    pub cfg: ProxyConfig,
    pub upstream: upstream::Client,
}
