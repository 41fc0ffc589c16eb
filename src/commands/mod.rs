//! The offline subcommands (`scan`, `hash`, `rules check`, `model train`): each returns the
//! process exit code (0 ok, 1 bad input or failed check) and prints JSON lines / errors.

pub mod hash;
pub mod model;
pub mod rules;
pub mod scan;
