//! `tenure`: the command line of Tenure.
//!
//! Today it runs the whole lifecycle against the built-in simulated authorization server
//! (`tenure demo`). The commands that work against real servers (`add`, `login`, `token`,
//! `status`, `renew`, `logout`, `forget`, `replay`) arrive with the tokio shell and the
//! stores.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of design §6.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// A usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// A replay diverged from its trace.
    pub const DIVERGED: u8 = 3;
    /// A login is required and the command may not open a browser.
    pub const LOGIN_REQUIRED: u8 = 4;
    /// Registration or renewal failed.
    pub const REGISTRATION_FAILED: u8 = 5;
}

/// Keeps an OAuth client's registration and credentials alive.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about)]
struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the whole lifecycle against the built-in simulated authorization server, in
    /// virtual time: discovery, registration, login, refresh, renewal, a warm restart, and
    /// expiry with a failing renewal. No network, no setup.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Commands::Demo => demo::run(cli.json),
    };
    ExitCode::from(code)
}
