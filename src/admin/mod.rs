//! The admin HTTP API on its own listener (DESIGN.md "Admin API").
//!
//! `mod.rs` accepts connections and routes by path, then method (unknown path 404, known path
//! with another method 405 + `Allow`); every endpoint but `/healthz` passes [`auth`] first.
//!
//! - `auth`: bearer token, compared in constant time.
//! - `reply`: JSON responses, [`reply::ApiError`], bounded body reading and JSON parsing.
//! - `purge`: `POST /purge` by URL or URL prefix.
//! - `verdicts`: `GET /verdicts/{sha256}`, `?url=`, `?class=` (paged over `verdicts_by_class`).
//! - `hashes`: runtime hash entries in the `hashes` tree, applied to the running classifiers.
//! - `reload`: `POST /rules/reload` and SIGHUP.
//! - `retro`: retro-match of new hash entries against stored verdicts and image hashes.
//! - `rescan`: `POST /rescan` / `GET /rescan`, background re-classification of stored bodies.
//! - `metrics`: `GET /metrics` in the Prometheus text format, and the proxy's counters.
//! - `send`: the connection's send limit (a client that stops reading is cut off).

pub mod auth;
pub mod hashes;
pub mod metrics;
pub mod purge;
pub mod reload;
pub mod reply;
pub mod rescan;
pub mod retro;
pub mod send;
pub mod verdicts;

use std::convert::Infallible;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Body;
use crate::proxy::Proxy;
use reply::ApiError;

/// What the admin endpoints work on: the shared proxy state and the token.
pub struct Admin {
    /// Cache, pipeline, store and counters shared with the proxy.
    pub proxy: Arc<Proxy>,
    /// The bearer token; empty means no authentication.
    token: String,
    /// The background rescan and its progress.
    pub rescans: Arc<rescan::Rescans>,
    /// Work that outlives its request but not shutdown ([`Admin::run_to_end`]).
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Admin {
    /// Admin state over `proxy`, requiring `token` when it is not empty.
    pub fn new(proxy: Arc<Proxy>, token: String) -> Arc<Admin> {
        Arc::new(Admin {
            proxy,
            token,
            rescans: Arc::default(),
            tasks: std::sync::Mutex::default(),
        })
    }

    /// Runs `work` as a task of its own and waits for its result: hyper drops a handler's
    /// future when its client hangs up, which must not stop a purge part of the way. The task
    /// is not detached: [`serve`] waits for it at shutdown within `proxy.shutdown_grace`,
    /// then stops it, so none uses the store after shutdown flushed it. `None`: stopped so.
    pub async fn run_to_end<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            // Reaps finished tasks, so the set holds only running ones.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                let _ = tx.send(work.await);
            });
        }
        rx.await.ok()
    }
}

/// Serves the admin API until `shutdown` turns true, then lets in-flight admin requests
/// finish (bounded by `proxy.shutdown_grace`) and closes idle keep-alive connections, so
/// none uses the store after shutdown flushed it.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Reaps finished connections, so the set holds only open ones.
            Some(_) = conns.join_next() => continue,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends leave the connection queued: retrying at once spun a
                // reactor thread for as long as the descriptors stayed used.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = Arc::clone(&admin);
        let header_timeout = admin.proxy.cfg.header_timeout;
        let stream = send::SendLimit::new(stream, admin.proxy.cfg.idle_timeout);
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            // A connection that sends no complete head within the proxy's header timeout,
            // idle keep-alive included, is closed: otherwise a slow or silent client held
            // it, and a descriptor, for ever. One that stops taking a response is cut off
            // after the idle timeout ([`send::SendLimit`]), as the proxy listener does.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let grace = admin.proxy.cfg.shutdown_grace;
    let end = tokio::time::Instant::now() + grace;
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            "admin requests still running after the shutdown grace period; closing them"
        );
    }
    // No handler runs past this, so none starts a task after the set is taken.
    conns.shutdown().await;
    let mut tasks =
        std::mem::take(&mut *admin.tasks.lock().unwrap_or_else(PoisonError::into_inner));
    let finished = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(end, finished).await.is_err() {
        tracing::warn!("an admin purge still running after the shutdown grace period; stopping it");
    }
    tasks.shutdown().await;
}

/// The endpoints: path pattern and the methods it answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Endpoint {
    Healthz,
    Metrics,
    Purge,
    Reload,
    Rescan,
    Hashes,
    Hash,
    Verdicts,
    Verdict,
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match parts.as_slice() {
            ["healthz"] => Endpoint::Healthz,
            ["metrics"] => Endpoint::Metrics,
            ["purge"] => Endpoint::Purge,
            ["rules", "reload"] => Endpoint::Reload,
            ["rescan"] => Endpoint::Rescan,
            ["hashes"] => Endpoint::Hashes,
            ["hashes", k, h] if !k.is_empty() && !h.is_empty() => Endpoint::Hash,
            ["verdicts"] => Endpoint::Verdicts,
            ["verdicts", s] if !s.is_empty() => Endpoint::Verdict,
            _ => return None,
        })
    }

    fn allow(self) -> &'static [Method] {
        match self {
            Endpoint::Healthz | Endpoint::Metrics | Endpoint::Verdicts | Endpoint::Verdict => {
                &[Method::GET, Method::HEAD]
            }
            Endpoint::Purge | Endpoint::Reload => &[Method::POST],
            Endpoint::Hashes | Endpoint::Rescan => &[Method::GET, Method::HEAD, Method::POST],
            Endpoint::Hash => &[Method::DELETE],
        }
    }
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(ep) = Endpoint::of(&path) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
            .into_response();
    };
    if !ep.allow().contains(req.method()) {
        return ApiError::method_not_allowed(ep.allow()).into_response();
    }
    if ep != Endpoint::Healthz {
        if let Err(e) = auth::check(&admin.token, req.headers()) {
            return e.into_response();
        }
    }
    let result = match (ep, req.method()) {
        (Endpoint::Healthz, _) => Ok(reply::json(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "ruleset": admin.proxy.pipeline.ruleset(),
            }),
        )),
        (Endpoint::Metrics, _) => {
            // Off the reactor: sled's `Tree::len` walks the whole `hashes` tree and
            // `size_on_disk` the store's files, so rendering inline stalled every proxy
            // connection on this reactor thread for as long as the scrape took.
            let proxy = Arc::clone(&admin.proxy);
            blocking(move || Ok(metrics::text(&proxy)))
                .await
                .map(metrics::page)
        }
        (Endpoint::Purge, _) => purge::handle(admin, req).await,
        (Endpoint::Reload, _) => Ok(reload::handle(admin).await),
        (Endpoint::Rescan, &Method::POST) => rescan::start(admin, req).await,
        (Endpoint::Rescan, _) => Ok(rescan::status(admin)),
        (Endpoint::Hashes, &Method::POST) => hashes::add(admin, req).await,
        (Endpoint::Hashes, _) => hashes::list(admin, req.uri().query()).await,
        (Endpoint::Hash, _) => hashes::delete(admin, &path).await,
        (Endpoint::Verdicts, _) => verdicts::query(admin, req.uri().query()).await,
        (Endpoint::Verdict, _) => verdicts::by_sha(admin, &path).await,
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// Runs blocking store work (sled iteration, bulk writes) off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("admin task failed: {e}")))?
}
