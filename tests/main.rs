//! The integration tests, one module per area, linked into one test binary: each `tests/*.rs`
//! as its own binary meant linking the whole crate 41 times, most of a clean `cargo test`.
//! Shared support lives in `common` (a sluice in-process or as a process, raw origins and
//! clients) and the `*_support` modules of the areas that need more.

mod admin_support;
mod common;
mod scan_support;
mod zipf_support;

mod admin_api;
mod admin_hardening;
mod admin_hashes;
mod admin_metrics;
mod admin_ops;
mod admin_rescan;
mod admin_retro;
mod cache_collapse;
mod cache_crash;
mod cache_invalidation;
mod cache_requests;
mod cache_reuse;
mod cache_store;
mod cache_validation;
mod cache_zipf;
mod cli_serve;
mod model_cli;
mod model_guard;
mod parsers_fuzz;
mod pdq_vectors;
mod proxy_client_limits;
mod proxy_connect;
mod proxy_errors;
mod proxy_forwarding;
mod proxy_guard;
mod proxy_keepalive;
mod proxy_parents;
mod proxy_shutdown;
mod proxy_streaming;
mod proxy_tls;
mod rules_cli;
mod scan_cli;
mod scan_proxy;
mod scan_proxy_body;
mod store_bodies;
mod store_crash;
mod store_safety;
mod wire_limits;
mod wire_requests;
mod wire_responses;
mod wire_survival;
