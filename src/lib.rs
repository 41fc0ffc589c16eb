//! sluice: a content-filtering caching forward proxy.
//!
//! The request path is `proxy → cache → upstream → scan → respond`; see ARCHITECTURE.md for
//! the map of modules and their invariants.
#![forbid(unsafe_code)]

pub mod admin;
pub mod body;
pub mod cache;
pub mod commands;
pub mod config;
pub mod log_writer;
pub mod proxy;
pub mod scan;
pub mod server;
pub mod store;
pub mod threads;
pub mod upstream;

/// The message a panic was raised with, when it has one (`panic!` with a literal or a format).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}
