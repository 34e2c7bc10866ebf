#!/usr/bin/env bash
# The main job on the bundled fixtures: build raw shards of fixtures/images into out/fixtures and
# print the summary and statistics. Idempotent: a rerun replaces out/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --build-only
mkdir -p out
cargo run --release --bin build-shards -- fixtures/images out/fixtures "$@"
