//! Wires the configured pieces together and runs them until shutdown.

use crate::config::Config;

/// Builds the runtime and serves until SIGTERM/Ctrl-C.
pub fn run_blocking(_cfg: Config) -> anyhow::Result<()> {
    anyhow::bail!("serve is not built yet")
}
