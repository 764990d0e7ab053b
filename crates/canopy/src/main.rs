//! `canopy`: the one binary. `serve` runs the server; `demo` runs it with a synthetic kids &
//! family app dataset; `project`, `import` and `export` work against a running server on the
//! same data dir (through its local admin token) or, when none runs, start one in-process.

mod api_client;
mod bench;
mod cli;
mod config;
mod demo;
mod dsr_cli;
mod import;
mod local;
mod privacy_cli;
mod residue;
mod retention_cli;
mod server;
mod synth;

use clap::Parser;

/// mimalloc returns freed memory to the OS promptly (the tail is freed in large waves after each
/// flush) and handles the many small allocations of JSON decoding well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
