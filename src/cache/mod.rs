//! RFC 9111 shared cache: policy, keys, object store, collapsing.
