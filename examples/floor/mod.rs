//! What the pass-path floors (`raw_pass`, `mixed_pass`, `bare_pass`) share: they start the
//! way peers.sh and cpu_per_request.sh start sluice (`NAME serve --config FILE`, listening on
//! the config's `proxy.listen`; `--version` names the floor) on a multi-thread runtime.

use std::future::Future;
use std::net::SocketAddr;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs `serve` on the listen address the command line's config names (`127.0.0.1:3128`
/// without one). `--version` prints `name` and returns.
pub fn run<F>(name: &str, serve: impl FnOnce(SocketAddr) -> F) -> Result<(), Error>
where
    F: Future<Output = Result<(), Error>>,
{
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = match args.iter().position(|a| a == "--config") {
        Some(i) => {
            let path = args.get(i + 1).ok_or("--config needs a file")?;
            let text = std::fs::read_to_string(path)?;
            sluice::config::Config::parse(&text, path)?.proxy.listen
        }
        None if args.iter().any(|a| a == "--version") => {
            println!("{name}");
            return Ok(());
        }
        None => "127.0.0.1:3128".parse()?,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen))
}
