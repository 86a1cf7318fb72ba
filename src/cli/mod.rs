//! The command-line front ends: each reads its input, calls the library, prints a result.

pub mod bench;
pub mod certs;
pub mod check;
pub mod convert;
pub mod crds;
pub mod fuzz;
pub mod nodes;
pub mod plan;
pub mod run;
pub mod sandbox;

/// Errors a command reports before exiting non-zero; the message is the whole story.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;
