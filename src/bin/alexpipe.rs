//! `alexpipe build | stats | convert | verify | info | merge`: the command line (see `alexpipe::cli`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = alexpipe::cli::Cli::parse();
    alexpipe::cli::exit(alexpipe::cli::run(cli.command))
}
