//! The options of commands that open a dataset which may live at a URL (`alexpipe info`,
//! `verify`): the cache directory, its size and an S3 endpoint (see `docs/STREAMING.md`).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::dataset::{remote_url, Dataset};
use crate::remote::{parse_bytes, RemoteOptions};

/// `--cache-dir`, `--cache-bytes`, `--s3-endpoint`.
#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// A dataset at an http(s):// or s3:// URL: the local cache directory for its shards
    /// [default: $XDG_CACHE_HOME/alexpipe/DIGEST-OF-THE-URL, else ~/.cache/alexpipe/...].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// A dataset at a URL: the most bytes its cache holds (e.g. 512M, 16G; at least the largest
    /// shard) [default: 16G].
    #[arg(long, value_parser = parse_cache_bytes)]
    pub cache_bytes: Option<u64>,
    /// An s3:// dataset in an S3-compatible store: its endpoint (http://HOST:PORT), overriding
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
}

fn parse_cache_bytes(text: &str) -> Result<u64, String> {
    parse_bytes(text).map_err(|e| e.to_string())
}

impl RemoteArgs {
    /// The library's options.
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            cache_dir: self.cache_dir.clone(),
            cache_bytes: self.cache_bytes,
            endpoint: self.s3_endpoint.clone(),
            ..RemoteOptions::default()
        }
    }

    /// Opens `location` as a URL with these options; `None` when it is not a URL.
    pub fn open(&self, location: &Path) -> Option<crate::Result<Dataset>> {
        remote_url(location).map(|url| Dataset::open_remote(url, &self.options()))
    }
}
