//! `build-shards INPUT OUT`: `alexpipe build` under the name users already type (paper §2: decode,
//! resize the short side, centre-crop, write a checksummed dataset with its statistics).

use clap::Parser;

/// Build an alexpipe dataset: decode every image, resize its short side to --size, crop the central
/// square (AlexNet §2), write checksummed shards plus the mean image and RGB eigenbasis (§4.1).
/// The same as `alexpipe build`.
#[derive(Parser, Debug)]
#[command(name = "build-shards", version, about, long_about = None)]
struct BuildShards {
    #[command(flatten)]
    args: alexpipe::cli::BuildArgs,
}

fn main() -> std::process::ExitCode {
    let parsed = BuildShards::parse();
    alexpipe::cli::exit(alexpipe::cli::run(alexpipe::cli::Command::Build(
        parsed.args,
    )))
}
