//! RFC 9111 shared cache: policy, keys, object store, collapsing.
pub mod bodies;
pub mod collapse;
pub mod directives;
pub mod evict;
pub mod freshness;
pub mod invalidate;
pub mod key;
pub mod memory;
pub mod meta;
pub mod policy;
pub mod range;
mod recover;
pub mod status;
pub mod store;
pub mod validate;
pub mod vary;

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod store_tests;
