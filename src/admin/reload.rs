//! `POST /rules/reload` and SIGHUP: reload rule files, hash lists and models from disk.
//!
//! A file that fails to load keeps the whole current set in force; the answer names every
//! error. The runtime hash entries of the `hashes` tree are replayed into the new classifiers
//! before they take over, so a reload never drops them.

use std::sync::PoisonError;

use http::{Response, StatusCode};
use serde_json::json;

use super::hashes::apply_stored;
use super::reply;
use super::Admin;
use crate::body::Body;
use crate::proxy::Proxy;

/// The outcome of a reload: what is loaded now, and the errors (empty on success).
#[derive(Debug)]
pub struct Outcome {
    /// Rules plus listed hashes in force after the attempt.
    pub loaded: usize,
    /// `file:line: message` per error; the old set stays when non-empty.
    pub errors: Vec<String>,
    /// Loader warnings (unknown directives and the like).
    pub warnings: Vec<String>,
}

/// Reloads on the calling thread (blocking: reads and compiles files).
pub fn reload_blocking(proxy: &Proxy) -> Outcome {
    let store = proxy.store.clone();
    let _edits = proxy
        .list_edits
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let result = proxy.pipeline.reload_with(&proxy.scan_cfg, |handles| {
        apply_stored(handles, &store);
    });
    let loaded = proxy.pipeline.handles().loaded();
    match result {
        Ok(w) => {
            tracing::info!(loaded, ruleset = %proxy.pipeline.ruleset(), "rules reloaded");
            Outcome {
                loaded,
                errors: Vec::new(),
                warnings: w.iter().map(ToString::to_string).collect(),
            }
        }
        Err(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            for e in &errors {
                tracing::warn!("reload kept the old rules: {e}");
            }
            Outcome {
                loaded,
                errors,
                warnings: Vec::new(),
            }
        }
    }
}

/// Reloads on the blocking pool.
pub async fn reload(proxy: std::sync::Arc<Proxy>) -> Outcome {
    tokio::task::spawn_blocking(move || reload_blocking(&proxy))
        .await
        .unwrap_or_else(|e| Outcome {
            loaded: 0,
            errors: vec![format!("reload task failed: {e}")],
            warnings: Vec::new(),
        })
}

/// `POST /rules/reload`: 200 `{"loaded","errors":[],"warnings"}`, or 422 with the errors when
/// the old set was kept.
pub async fn handle(admin: &Admin) -> Response<Body> {
    let o = reload(admin.proxy.clone()).await;
    let status = if o.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    reply::json(
        status,
        &json!({
            "loaded": o.loaded,
            "errors": o.errors,
            "warnings": o.warnings,
            "ruleset": admin.proxy.pipeline.ruleset(),
        }),
    )
}
