//! The `sluice` command line: parses arguments and calls into the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::commands;
use sluice::config::Config;

/// mimalloc instead of glibc malloc: the request path allocates many small, short-lived
/// header values and strings, and glibc's `_int_malloc` was ~15% of a cache hit's profile.
/// Built with `no_thp`: mimalloc v3 otherwise asks for transparent huge pages, and each
/// 2 MiB page it touches is resident whole (peak RSS ~40 MiB higher idle, ~85 MiB on a
/// storing miss workload, with no throughput gained; README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A content-filtering caching forward proxy"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy and the admin API.
    Serve {
        /// TOML config file (every key optional).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Proxy listen address (overrides proxy.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin API listen address (overrides admin.listen).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Store directory (overrides store.path).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Tokio worker threads (overrides proxy.workers; 0 = one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// Validate the configuration and exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Classify files offline with the same pipeline and [scan] settings as `serve`.
    Scan {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print SHA-256 and PDQ hash of image files, one JSON object per line.
    Hash {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rule file tools.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Text model tools.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Parse and compile rule files; exit 1 with `file:line: message` per error.
    Check { dir: Option<PathBuf> },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Train the text model on a directory of spam and one of ham.
    Train {
        #[arg(long)]
        spam: PathBuf,
        #[arg(long)]
        ham: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, sluice::config::Error> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Serve {
            config,
            listen,
            admin,
            store,
            workers,
            check_config,
        } => {
            let mut cfg = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sluice: {e}");
                    return ExitCode::from(1);
                }
            };
            if let Some(a) = listen {
                cfg.proxy.listen = a;
            }
            if let Some(a) = admin {
                cfg.admin.listen = a;
            }
            if let Some(s) = store {
                cfg.store.path = s;
            }
            if let Some(w) = workers {
                cfg.proxy.workers = w;
            }
            if let Err(e) = cfg.validate("command line") {
                eprintln!("sluice: {e}");
                return ExitCode::from(1);
            }
            if check_config {
                return match sluice::server::check(&cfg) {
                    Ok(warnings) => {
                        for w in warnings {
                            eprintln!("warning: {w}");
                        }
                        println!("configuration ok");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("sluice: {e}");
                        ExitCode::from(1)
                    }
                };
            }
            match sluice::server::run_blocking(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("sluice: {e:#}");
                    1
                }
            }
        }
        Cmd::Scan { config, files } => match config
            .as_deref()
            .map_or_else(|| Ok(Config::default()), Config::load_offline)
        {
            Ok(cfg) => commands::scan::run(&cfg, &files),
            Err(e) => {
                eprintln!("sluice: {e}");
                1
            }
        },
        Cmd::Hash { files } => commands::hash::run(&files),
        Cmd::Rules {
            cmd: RulesCmd::Check { dir },
        } => commands::rules::check(dir.as_deref().unwrap_or("rules".as_ref())),
        Cmd::Model {
            cmd: ModelCmd::Train { spam, ham, out },
        } => commands::model::train(&spam, &ham, &out),
    };
    ExitCode::from(code)
}
