//! RFC 9111 shared cache: policy, keys, object store, collapsing.
pub mod directives;
pub mod evict;
pub mod freshness;
pub mod invalidate;
pub mod key;
pub mod meta;
pub mod policy;
pub mod range;
pub mod status;
pub mod validate;
pub mod vary;

#[cfg(test)]
mod policy_tests;
