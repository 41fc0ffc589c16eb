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
pub mod upstream;
