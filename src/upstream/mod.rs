//! Upstream side: connection pool, routing to parents, TLS, destination guard.
