//! Wires the configured pieces together: binds the listeners, runs proxy and admin API,
//! and shuts down gracefully on SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::collapse::Collapser;
use crate::cache::store::{Cache, CacheConfig};
use crate::config::Config;
use crate::proxy::{listen, Proxy};
use crate::scan::pipeline::Pipeline;
use crate::store::{self, Store};
use crate::{admin, upstream};

/// Why sluice could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] upstream::tls::ConfigError),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    Cache(#[from] crate::cache::store::Error),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scan(Vec<crate::scan::LoadError>),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running sluice: its bound addresses and a handle to stop it.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded grace), waits for running
    /// scans (bounded by `scan.timeout`) and store writes, flushes the store, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Observe mode's scans and stores run after their responses, each holding an
        // `observing` slot from scan to store: wait for them to hand every slot back (their
        // scans are bounded by scan.timeout), then close, so a body still streaming when the
        // grace ran out is neither scanned nor stored after the store's last flush.
        let observers = &self.proxy.observing;
        let all = u32::try_from(self.proxy.pipeline.capacity()).unwrap_or(u32::MAX);
        let wait = self.proxy.scan_cfg.timeout + self.proxy.cfg.shutdown_grace;
        if tokio::time::timeout(wait, observers.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("observe-mode scans still running at shutdown; they may be lost");
        }
        observers.close();
        self.proxy.pipeline.drain().await;
        // A store write whose request was cut at the grace limit, or an observe-mode write,
        // may still be in its transaction: let it finish before the store closes.
        if !self.proxy.cache.idle(self.proxy.cfg.shutdown_grace).await {
            tracing::warn!("cache writes still running at shutdown; they may be lost");
        }
        // sled writes its log from background threads and fsyncs again when the last handle
        // drops, holding the store's lock meanwhile; flushing here makes that drop quick, so
        // a restart (or a test reopening the store) does not wait behind a loaded disk.
        // Bounded like the rest of shutdown: a disk that stopped answering must not hold it.
        let db = self.proxy.store.db.clone();
        let flush = tokio::task::spawn_blocking(move || db.flush());
        match tokio::time::timeout(self.proxy.cfg.shutdown_grace, flush).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("store flush at shutdown failed: {e}"),
            Ok(Err(e)) => tracing::warn!("store flush at shutdown did not finish: {e}"),
            Err(_) => tracing::warn!("store flush at shutdown still running; giving up on it"),
        }
    }
}

/// What `serve --check-config` checks beyond [`Config::validate`]: the files `start` loads and
/// refuses to start without (the extra CA file, rules, hash lists, models), like `nginx -t`.
/// Returns the load warnings.
pub fn check(cfg: &Config) -> Result<Vec<crate::scan::LoadError>, Error> {
    upstream::tls::client_config(&cfg.upstream.ca_file)?;
    let (_, warnings) = Pipeline::from_config(&cfg.scan).map_err(Error::Scan)?;
    Ok(warnings)
}

/// Binds and starts proxy and admin listeners on the current runtime, on the store at
/// `store.path`. A damaged store is moved aside and sluice starts on an empty one
/// ([`Store::open_or_move_aside`]); a newer schema or a locked store is an error.
pub async fn start(cfg: Config) -> Result<Running, Error> {
    // Opening the store may wait seconds for a lock: a SIGHUP meanwhile must not end sluice
    // (its rules are read after this anyway).
    let _hup = hangup_signal();
    let path = cfg.store.path.clone();
    let (store, _) = Store::open_or_move_aside(&path)?;
    match start_with_store(cfg.clone(), store).await {
        // Some damage only shows while the cache index is rebuilt from every meta.
        Err(Error::Cache(crate::cache::store::Error::Sled(e))) if store::is_sled_damage(&e) => {
            store::move_aside(&path, &store::Error::Sled(e))?;
            start_with_store(cfg, Store::open(&path)?).await
        }
        other => other,
    }
}

/// Like [`start`] with an already open store (tests use a temporary one).
pub async fn start_with_store(cfg: Config, store: Store) -> Result<Running, Error> {
    // Before the rules load and the listeners bind: a SIGHUP from then on is a reload once
    // serving, never the default action (which ends the process).
    let hup = hangup_signal();
    let (pipeline, warnings) = Pipeline::from_config(&cfg.scan).map_err(Error::Scan)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let pipeline = pipeline.with_store_reusing_for(&store, cfg.store.verdict_retention);
    let runtime_hashes = admin::hashes::apply_stored(&pipeline.handles(), &store);
    if runtime_hashes > 0 {
        pipeline.refresh_ruleset();
        tracing::info!(entries = runtime_hashes, "applied runtime hash entries");
    }
    let cache = Cache::open(&store, CacheConfig::from_config(&cfg.store))?;
    let bind = |addr: SocketAddr, what: &'static str| {
        listen(addr).map_err(|source| Error::Bind { addr, what, source })
    };
    let proxy_listener = bind(cfg.proxy.listen, "proxy")?;
    let admin_listener = bind(cfg.admin.listen, "admin")?;
    let proxy_addr = proxy_listener.local_addr().map_err(|source| Error::Bind {
        addr: cfg.proxy.listen,
        what: "proxy",
        source,
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| Error::Bind {
        addr: cfg.admin.listen,
        what: "admin",
        source,
    })?;
    let proxy = Arc::new(Proxy {
        cfg: cfg.proxy.clone(),
        upstream_cfg: cfg.upstream.clone(),
        scan_cfg: cfg.scan.clone(),
        upstream: upstream::Client::new(&cfg.upstream)?,
        cache,
        collapser: Collapser::new(),
        observing: Arc::new(tokio::sync::Semaphore::new(pipeline.capacity())),
        pipeline,
        store,
        metrics: Default::default(),
        list_edits: Default::default(),
    });
    let (tx, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(listen::serve(proxy_listener, proxy.clone(), rx.clone())),
        tokio::spawn(admin::serve(
            admin_listener,
            admin::Admin::new(proxy.clone(), cfg.admin_token()),
            rx.clone(),
        )),
        tokio::spawn(reload_on_sighup(proxy.clone(), hup, rx.clone())),
        tokio::spawn(store::retention::run(
            proxy.store.clone(),
            cfg.store.verdict_retention,
            rx,
        )),
    ];
    Ok(Running {
        proxy_addr,
        admin_addr,
        proxy,
        shutdown: tx,
        tasks,
    })
}

/// Binds a listener with a 4096-connection accept backlog (tokio's `bind` uses 1024; a burst of
/// new connections on a loaded machine overflowed it and clients saw SYN retransmits). The
/// kernel caps it at `net.core.somaxconn`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// How long the exit waits for blocking-pool work still running after shutdown (a DNS
/// lookup, a store flush that shutdown gave up on): tokio's runtime drop waits for it
/// without bound.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Builds the runtime (`proxy.workers` threads) and serves until SIGTERM/Ctrl-C. A second
/// SIGTERM or Ctrl-C during the drain stops at once, as Squid's does during its
/// `shutdown_lifetime`.
pub fn run_blocking(cfg: Config) -> Result<(), Error> {
    let _log_flusher = init_logging();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.proxy.workers > 0 {
        rt.worker_threads(cfg.proxy.workers);
    }
    let rt = rt.enable_all().build().map_err(Error::Runtime)?;
    let result = rt.block_on(async move {
        let store_path = cfg.store.path.clone();
        // Before the listeners exist: a SIGTERM or Ctrl-C as soon as the port answers must
        // drain, not hit the default action.
        let mut stop = StopSignals::install();
        let running = start(cfg).await?;
        tracing::info!(proxy = %running.proxy_addr, admin = %running.admin_addr, store = %store_path.display(), "sluice serving");
        stop.recv().await;
        tracing::info!("shutting down: finishing in-flight requests (signal again to stop at once)");
        tokio::select! {
            () = running.shutdown() => tracing::info!("stopped"),
            () = stop.recv() => tracing::warn!(
                "second stop signal: exiting without waiting for in-flight requests, scans and store writes"
            ),
        }
        Ok(())
    });
    rt.shutdown_timeout(EXIT_WAIT);
    result
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

/// Installs the SIGHUP handler now (before the listeners bind, so a SIGHUP never hits the
/// default action, which would end the process).
fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "no SIGHUP reload"))
            .ok()
    }
}

/// Reloads rules and hash lists on SIGHUP until shutdown (like `POST /rules/reload`).
async fn reload_on_sighup(proxy: Arc<Proxy>, hup: Hangup, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Some(mut hup) = hup else {
            return;
        };
        loop {
            let again = tokio::select! {
                got = hup.recv() => got.is_some(),
                _ = shutdown.wait_for(|s| *s) => false,
            };
            if !again {
                return;
            }
            let o = admin::reload::reload(proxy.clone()).await;
            tracing::info!(loaded = o.loaded, errors = o.errors.len(), "SIGHUP reload");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (proxy, hup, shutdown.wait_for(|s| *s).await);
    }
}

/// Log lines (one access-log line per request) are formatted on the calling thread and
/// written in batches by `log_writer`'s background thread, so a request never waits for a
/// `write` on stderr. Lines are never dropped: when the writer falls behind by 64 MiB,
/// loggers wait. The returned flusher writes what is left at exit.
fn init_logging() -> Option<crate::log_writer::Flusher> {
    use std::io::IsTerminal;
    // An unset RUST_LOG means info; one that does not parse also runs at info, but says so
    // once logging is up (a typo must not silently log more, or less, than asked).
    let (filter, bad) = match std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV) {
        Ok(spec) => match tracing_subscriber::EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some((spec, e))),
        },
        Err(_) => (tracing_subscriber::EnvFilter::new("info"), None),
    };
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    // Logs go to stderr (README), leaving stdout to command output; written in batches by
    // one background thread, or directly if that thread cannot be started.
    let flusher = match crate::log_writer::spawn(std::io::stderr()) {
        Ok((writer, flusher)) => {
            let _ = fmt.with_writer(writer).try_init();
            Some(flusher)
        }
        Err(_) => {
            let _ = fmt.with_writer(std::io::stderr).try_init();
            None
        }
    };
    if let Some((spec, e)) = bad {
        tracing::warn!("RUST_LOG={spec:?} does not parse ({e}); logging at info");
    }
    flusher
}

/// SIGTERM and SIGINT (Ctrl-C), installed together before the listeners bind and kept
/// for the whole run: once tokio handles a signal its default action never comes back, so
/// a handler that is no longer polled swallows the signal.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves at the next SIGTERM or Ctrl-C.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            if self.term.is_none() && self.interrupt.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                () = next(&mut self.term) => {}
                () = next(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
