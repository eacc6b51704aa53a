//! `switchboard`: the server and its administration tool in one binary.

mod app;
mod archive_cli;
mod archive_export;
mod archive_mail;
mod cli;
mod config;
mod credentials;
mod private_fs;
mod sip;
mod transport;
mod web;

use clap::Parser;
use std::process::ExitCode;

/// The SIP path allocates many small, short-lived strings; mimalloc handles
/// that pattern markedly better than the system allocator (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            match e.downcast_ref::<cli::ExitWith>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
