//! Datasets that live elsewhere: a shard dataset directory served over HTTP(S)
//! (`https://host/path/ds/`) or in S3 and S3-compatible stores (`s3://bucket/prefix/ds/`), read
//! through a bounded local cache. [`RemoteShards`] is a [`RecordSource`] like the local
//! [`crate::shards::ShardSource`]: `manifest.json` and the mean image are fetched and checked as a
//! local open checks them; each shard is fetched whole into the cache directory
//! (`cache.rs`), checked against the CRC-32C the manifest gives it, and its header and record
//! table checked before any record of it is served; every record is then read with `pread` and
//! checked against its own CRC on every read, as locally. A cached copy found damaged is fetched
//! again once. The epoch's order ([`RecordSource::plan_reads`]) drives a prefetch of the shards
//! the coming batches need, in order. `docs/STREAMING.md` describes it for users.
//!
//! Backends sit behind one seam (`store.rs`): `http.rs` and `s3.rs`; the fetcher (`fetch.rs`) retries,
//! bounds the requests in flight and times out.

mod cache;
mod fetch;
mod http;
mod s3;
mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub use cache::INDEX_FILE as CACHE_INDEX_FILE;
pub use fetch::RetryPolicy;

use cache::{cache_name, CacheDir, Evicted, Foreign, IndexEntry, Lookup, Need, Residency};
use fetch::Fetcher;

use crate::error::{Error, IoContext, Result};
use crate::prep::ResizeCrop;
use crate::shards::{
    open_shard, read_shard_pixels, stats_from_mean_image, Manifest, Shard, INDEX_FILE,
    MANIFEST_FILE,
};
use crate::source::{DatasetInfo, RecordSource};
use crate::stats::Stats;

/// The cache's size when none is given: 16 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 30;

/// How a remote dataset is fetched and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// The cache directory; `None`: `$XDG_CACHE_HOME/alexpipe/<digest of the URL>` (else
    /// `~/.cache/alexpipe/...`). One process uses a directory at a time (an advisory lock); with
    /// the default, a second process on the same dataset gets a directory of its own
    /// (`<digest>.1`, …), an explicit directory in use is an error.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes the cache directory holds ([`DEFAULT_CACHE_BYTES`] when `None`); at least
    /// the largest shard, better a few shard windows.
    pub cache_bytes: Option<u64>,
    /// S3: the endpoint of an S3-compatible store (`http://127.0.0.1:9000`), overriding
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Retries, back-off and timeouts.
    pub retry: RetryPolicy,
    /// Requests in flight at once (prefetch and demand together) in this process.
    pub concurrency: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            cache_dir: None,
            cache_bytes: None,
            endpoint: None,
            retry: RetryPolicy::default(),
            concurrency: 4,
        }
    }
}

/// True for a dataset location this module opens: `http://`, `https://` or `s3://`.
pub fn is_remote(location: &str) -> bool {
    ["http://", "https://", "s3://"]
        .iter()
        .any(|scheme| location.starts_with(scheme))
}

/// A byte count as people write it: `1000000`, `512M`, `16G`, `2GiB`, `1.5T` (K, M, G, T are
/// powers of 1024, with or without `i`/`iB`/`B`).
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KI" | "KIB" => 10,
        "M" | "MB" | "MI" | "MIB" => 20,
        "G" | "GB" | "GI" | "GIB" => 30,
        "T" | "TB" | "TI" | "TIB" => 40,
        _ => u32::MAX,
    };
    match number.parse::<f64>() {
        Ok(n) if shift != u32::MAX && n.is_finite() && n >= 0.0 => {
            Ok((n * (1u64 << shift) as f64) as u64)
        }
        _ => Err(Error::Usage(format!(
            "cache size {text:?}: give bytes, or a number with K, M, G or T (e.g. 512M, 16G)"
        ))),
    }
}

/// The open shards and the cache's bookkeeping, shared with the prefetch threads.
struct Shared {
    url: String,
    manifest: Manifest,
    shard_starts: Vec<u64>,
    /// URL of each shard, and the name of its cached copy.
    urls: Vec<String>,
    names: Vec<String>,
    fetcher: Fetcher,
    dir: CacheDir,
    state: Mutex<Residency<Arc<Shard>>>,
    changed: Condvar,
    stop: AtomicBool,
}

/// The records of a shard dataset at a URL, read through a bounded local cache.
pub struct RemoteShards {
    shared: Arc<Shared>,
    info: DatasetInfo,
    location: PathBuf,
    prefetchers: Vec<JoinHandle<()>>,
}

impl RemoteShards {
    /// Opens the dataset at `url` (`http(s)://…/ds/` or `s3://bucket/prefix/ds/`): fetches and
    /// checks `manifest.json` and, with `load_stats`, the mean image; opens (or creates) the cache
    /// and starts the prefetchers. No shard is fetched yet.
    pub fn open(
        url: &str,
        opts: &RemoteOptions,
        load_stats: bool,
    ) -> Result<(RemoteShards, Option<Stats>)> {
        let store: Box<dyn store::Store> = if url.starts_with("s3://") {
            Box::new(s3::S3Store::new(url, opts.endpoint.as_deref())?)
        } else {
            Box::new(http::HttpStore::new(url))
        };
        let fetcher = Fetcher::new(store, opts.retry, opts.concurrency);
        let manifest_url = fetcher.url(MANIFEST_FILE);
        // A manifest failing its own checksum is fetched again, like a body cut short: a proxy
        // or a flaky link damages bytes in transit too.
        let manifest_path = PathBuf::from(&manifest_url);
        let sealed = |b: &[u8]| {
            Manifest::parse(b, &manifest_path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let bytes = fetcher.fetch_bytes(MANIFEST_FILE, 256 << 20, &sealed)?;
        let manifest = Manifest::parse(&bytes, Path::new(&manifest_url))?;
        let mut shard_starts = Vec::with_capacity(manifest.shards.len());
        let mut next = 0u64;
        for s in &manifest.shards {
            if s.first_record != next {
                return Err(Error::format(
                    &manifest_url,
                    "manifest shard ranges are not contiguous; rebuild the dataset",
                ));
            }
            shard_starts.push(next);
            next = next
                .checked_add(s.num_records)
                .ok_or_else(|| Error::format(&manifest_url, "manifest record counts overflow"))?;
        }
        if next != manifest.num_records {
            return Err(Error::format(
                &manifest_url,
                format!(
                    "shards hold {next} records, manifest says {}; rebuild the dataset",
                    manifest.num_records
                ),
            ));
        }
        let limit = opts.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES);
        if let Some(big) = manifest.shards.iter().max_by_key(|s| s.bytes) {
            if big.bytes > limit {
                return Err(Error::Usage(format!(
                    "a cache of {limit} bytes cannot hold shard {} of {url} ({} bytes): shards are fetched whole, so the cache must hold at least the largest one — give a cache of at least {} bytes (better a few shard windows, e.g. {}), or rebuild with a smaller --shard-size",
                    big.file,
                    big.bytes,
                    big.bytes,
                    big.bytes * 8
                )));
            }
        }
        let stats = if load_stats {
            let name = &manifest.stats.mean_image;
            let listed = manifest.files.iter().find(|f| &f.file == name).cloned();
            let check = |b: &[u8]| match &listed {
                Some(f) if f.bytes != b.len() as u64 || f.crc32c != crc32c::crc32c(b) => {
                    Err("the bytes fail the size and checksum in manifest.json".to_string())
                }
                _ => Ok(()),
            };
            let bytes = fetcher.fetch_bytes(name, 1 << 30, &check)?;
            Some(stats_from_mean_image(
                &manifest,
                &bytes,
                Path::new(&fetcher.url(name)),
            )?)
        } else {
            None
        };
        let urls: Vec<String> = manifest
            .shards
            .iter()
            .map(|s| fetcher.url(&s.file))
            .collect();
        let names: Vec<String> = manifest
            .shards
            .iter()
            .zip(&urls)
            .map(|(s, u)| cache_name(u, &s.file))
            .collect();
        let (dir, listed) = open_cache_dir(url, opts.cache_dir.as_deref())?;
        let mut residency = Residency::new(limit, manifest.shards.len());
        for entry in listed {
            let shard = names.iter().position(|n| *n == entry.file).filter(|&k| {
                let s = &manifest.shards[k];
                entry.url == urls[k] && entry.bytes == s.bytes && entry.crc32c == s.crc32c
            });
            match shard {
                Some(k) => residency.add_on_disk(k, entry.bytes),
                None => residency.add_foreign(Foreign {
                    name: entry.file,
                    bytes: entry.bytes,
                }),
            }
        }
        let info = manifest.dataset_info(load_stats);
        let shared = Arc::new(Shared {
            url: url.to_string(),
            manifest,
            shard_starts,
            urls,
            names,
            fetcher,
            dir,
            state: Mutex::new(residency),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        {
            let mut st = shared.lock();
            let evicted = st.shrink_to_limit();
            shared.delete(&evicted);
            shared.write_index(&st)?;
        }
        let mut prefetchers = Vec::new();
        for n in 0..opts.concurrency.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("alexpipe-prefetch-{n}"))
                .spawn(move || shared.prefetch_loop());
            match spawned {
                Ok(h) => prefetchers.push(h),
                // Prefetch is an optimisation: readers fetch what they need themselves.
                Err(_) => break,
            }
        }
        let source = RemoteShards {
            shared,
            info,
            location: PathBuf::from(url),
            prefetchers,
        };
        Ok((source, stats))
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.shared.manifest
    }

    /// The cache directory in use.
    pub fn cache_dir(&self) -> &Path {
        self.shared.dir.path()
    }

    /// Bytes the cache holds or has reserved for fetches under way (never above its limit).
    pub fn cache_used(&self) -> u64 {
        self.shared.lock().used()
    }

    /// The shard holding record `index`.
    fn locate(&self, index: usize) -> Result<usize> {
        self.check_index(index)?;
        Ok(self.shared.shard_of(index))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Residency<Arc<Shard>>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard_of(&self, index: usize) -> usize {
        self.shard_starts
            .partition_point(|&s| s <= index as u64)
            .saturating_sub(1)
    }

    /// Runs `read` on shard `k`, pinned: fetched (or checked) first if it must be. A read that
    /// finds the cached copy damaged (a record failing its checksum) drops the copy and fetches
    /// it again, once.
    fn with_shard<R>(&self, k: usize, read: &mut dyn FnMut(&Shard) -> Result<R>) -> Result<R> {
        let mut fetched_again = false;
        loop {
            let shard = self.acquire(k)?;
            let result = read(&shard);
            drop(shard);
            let damaged = matches!(result, Err(Error::Corrupt { .. })) && !fetched_again;
            let mut st = self.lock();
            if damaged {
                st.condemn(k);
            }
            let unpinned = st.unpin(k);
            if unpinned.removed {
                self.dir.remove(&self.names[k]);
                self.write_index(&st)?;
            }
            if unpinned.wake {
                self.changed.notify_all();
            }
            drop(st);
            if !damaged {
                return result;
            }
            fetched_again = true;
        }
    }

    /// Shard `k` open and pinned.
    fn acquire(&self, k: usize) -> Result<Arc<Shard>> {
        let bytes = self.manifest.shards[k].bytes;
        let mut st = self.lock();
        loop {
            let job = match st.lookup(k) {
                Lookup::Ready(shard) => {
                    let shard = shard.clone();
                    st.pin(k);
                    return Ok(shard);
                }
                Lookup::Failed(msg) => {
                    return Err(Error::Remote {
                        url: self.urls[k].clone(),
                        msg: msg.to_string(),
                    })
                }
                Lookup::Fetching => None,
                Lookup::OnDisk => {
                    st.claim(k);
                    Some((true, Evicted::default()))
                }
                Lookup::Missing => st.reserve(k, bytes, Need::Now).map(|e| (false, e)),
            };
            match job {
                Some((on_disk, evicted)) => {
                    drop(st);
                    self.delete(&evicted);
                    let loaded = self.load(k, on_disk);
                    self.finish(k, loaded)?;
                    st = self.lock();
                }
                None => {
                    st.waiting += 1;
                    st = self
                        .changed
                        .wait_timeout(st, Duration::from_secs(1))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    st.waiting -= 1;
                }
            }
        }
    }

    /// Records how a fetch ended and wakes every waiting thread.
    fn finish(&self, k: usize, loaded: Result<Shard>) -> Result<()> {
        let mut st = self.lock();
        let result = match loaded {
            Ok(shard) => {
                st.ready(k, Arc::new(shard));
                self.write_index(&st)
            }
            Err(e) => {
                let text = e.to_string();
                let prefix = format!("{}: ", self.urls[k]);
                st.failed(k, text.strip_prefix(&prefix).unwrap_or(&text).to_string());
                Err(e)
            }
        };
        self.changed.notify_all();
        result
    }

    /// Brings shard `k` into the cache (its bytes reserved): a copy on disk is checked against
    /// its checksum first and fetched again if it fails.
    fn load(&self, k: usize, on_disk: bool) -> Result<Shard> {
        let info = &self.manifest.shards[k];
        let path = self.dir.file(&self.names[k]);
        let open = |path: &Path| {
            open_shard(
                path,
                &self.manifest,
                info.first_record,
                info.num_records,
                info.bytes,
            )
        };
        if on_disk && file_crc(&path).ok() == Some(info.crc32c) {
            if let Ok(shard) = open(&path) {
                return Ok(shard);
            }
        }
        self.dir.remove(&self.names[k]);
        let part = self.dir.file(&format!("{}.part", self.names[k]));
        let fetched = std::fs::File::create(&part)
            .at(&part)
            .and_then(|mut file| {
                self.fetcher
                    .fetch_to_file(&info.file, info.bytes, info.crc32c, &mut file)
            })
            .and_then(|()| std::fs::rename(&part, &path).at(&path));
        if let Err(e) = fetched {
            self.dir.remove(&format!("{}.part", self.names[k]));
            return Err(e);
        }
        open(&path)
    }

    /// Deletes the files of evicted shards (their open readers closed with their slots).
    fn delete(&self, evicted: &Evicted) {
        for &k in &evicted.shards {
            self.dir.remove(&self.names[k]);
        }
        for f in &evicted.foreign {
            self.dir.remove(&f.name);
        }
    }

    fn write_index(&self, st: &Residency<Arc<Shard>>) -> Result<()> {
        let mut files: Vec<IndexEntry> = st
            .on_disk()
            .map(|k| IndexEntry {
                file: self.names[k].clone(),
                url: self.urls[k].clone(),
                bytes: self.manifest.shards[k].bytes,
                crc32c: self.manifest.shards[k].crc32c,
            })
            .collect();
        files.sort_by(|a, b| a.file.cmp(&b.file));
        // Other datasets' files stay listed (and evictable) until they are evicted.
        files.extend(st.foreign().iter().map(|f| IndexEntry {
            file: f.name.clone(),
            url: String::new(),
            bytes: f.bytes,
            crc32c: 0,
        }));
        self.dir.write_index(&files)
    }

    /// A prefetch thread: brings in the shard the plan needs soonest while there is room for it
    /// without evicting anything needed sooner.
    fn prefetch_loop(&self) {
        let mut st = self.lock();
        while !self.stop.load(Ordering::Acquire) {
            let job = st.next_to_prefetch().and_then(|k| match st.lookup(k) {
                Lookup::OnDisk => {
                    st.claim(k);
                    Some((k, true, Evicted::default()))
                }
                _ => st
                    .reserve(k, self.manifest.shards[k].bytes, Need::Ahead)
                    .map(|e| (k, false, e)),
            });
            match job {
                Some((k, on_disk, evicted)) => {
                    drop(st);
                    self.delete(&evicted);
                    // A failure is recorded for the readers, who report it.
                    let _ = self.finish(k, self.load(k, on_disk));
                    st = self.lock();
                }
                None => {
                    st.waiting += 1;
                    st = self
                        .changed
                        .wait_timeout(st, Duration::from_millis(500))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    st.waiting -= 1;
                }
            }
        }
    }

    /// A non-shard file of the dataset (`index.tsv`), checked against the manifest's checksum.
    fn fetch_file(&self, name: &str) -> Result<Vec<u8>> {
        let listed = self.manifest.files.iter().find(|f| f.file == name).cloned();
        let check = |b: &[u8]| match &listed {
            Some(f) if f.bytes != b.len() as u64 || f.crc32c != crc32c::crc32c(b) => {
                Err("the bytes fail the size and checksum in manifest.json".to_string())
            }
            _ => Ok(()),
        };
        self.fetcher.fetch_bytes(name, 4 << 30, &check)
    }
}

/// CRC-32C of a whole file.
fn file_crc(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(crc);
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

/// The cache directory for `url`, locked: `explicit`, or the default (the first of
/// `<root>/<digest>`, `<root>/<digest>.1`, … that no other process holds).
fn open_cache_dir(url: &str, explicit: Option<&Path>) -> Result<(CacheDir, Vec<IndexEntry>)> {
    if let Some(dir) = explicit {
        return CacheDir::open(dir)?.ok_or_else(|| {
            Error::Usage(format!(
                "cache directory {} is in use by another process: give each process (each rank on a machine) its own cache_dir",
                dir.display()
            ))
        });
    }
    let root = default_cache_root();
    let digest = crate::state::Digest::new().str(url).hex();
    for n in 0..64 {
        let dir = match n {
            0 => root.join(&digest),
            n => root.join(format!("{digest}.{n}")),
        };
        if let Some(opened) = CacheDir::open(&dir)? {
            return Ok(opened);
        }
    }
    Err(Error::Usage(format!(
        "64 processes already use a cache of {url} under {}: give this one its own cache_dir",
        root.display()
    )))
}

/// `$XDG_CACHE_HOME/alexpipe`, else `~/.cache/alexpipe`, else the temporary directory's.
pub fn default_cache_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .map(|h| h.join(".cache"));
    xdg.or(home)
        .unwrap_or_else(std::env::temp_dir)
        .join("alexpipe")
}

impl Drop for RemoteShards {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.changed.notify_all();
        for h in self.prefetchers.drain(..) {
            let _ = h.join();
        }
    }
}

impl RecordSource for RemoteShards {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn location(&self) -> &Path {
        &self.location
    }

    /// The label from the shard's record table (the shard is fetched if it is not cached).
    fn label(&self, index: usize) -> Result<u32> {
        let k = self.locate(index)?;
        let first = self.shared.shard_starts[k] as usize;
        self.shared
            .with_shard(k, &mut |s| Ok(s.entries[index - first].label))
    }

    fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
        let k = self.locate(index)?;
        let first = self.shared.shard_starts[k] as usize;
        self.shared.with_shard(k, &mut |s| {
            let e = &s.entries[index - first];
            buf.resize(e.len as usize, 0);
            s.read_checked(index, e, buf)?;
            Ok(e.label)
        })
    }

    fn read_pixels(&self, index: usize, resize: &mut ResizeCrop, out: &mut [u8]) -> Result<u32> {
        let k = self.locate(index)?;
        let first = self.shared.shard_starts[k] as usize;
        let manifest = &self.shared.manifest;
        self.shared.with_shard(k, &mut |s| {
            read_shard_pixels(manifest, s, index, &s.entries[index - first], resize, out)
        })
    }

    /// Fetches (or checks the cached copy of) every shard against its whole-file checksum, then
    /// checks every record's, and the dataset's other files against theirs.
    fn verify(&self) -> Result<u64> {
        let mut buf = Vec::new();
        for k in 0..self.shared.manifest.shards.len() {
            let first = self.shared.shard_starts[k] as usize;
            self.shared.with_shard(k, &mut |s| {
                for (i, e) in s.entries.iter().enumerate() {
                    buf.resize(e.len as usize, 0);
                    s.read_checked(first + i, e, &mut buf)?;
                }
                Ok(())
            })?;
        }
        for f in &self.shared.manifest.files {
            self.shared.fetch_file(&f.file)?;
        }
        Ok(self.shared.manifest.num_records)
    }

    fn provenance(&self) -> Result<String> {
        let bytes = self.shared.fetch_file(INDEX_FILE)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::format(
                self.shared.fetcher.url(INDEX_FILE),
                "is not UTF-8 text; rebuild the dataset",
            )
        })
    }

    fn units(&self) -> Option<&[u64]> {
        Some(&self.shared.shard_starts)
    }

    fn plan_reads(&self, order: &[usize]) {
        let mut st = self.shared.lock();
        st.set_plan(order.iter().map(|&i| self.shared.shard_of(i)));
        self.shared.changed.notify_all();
    }
}

impl std::fmt::Debug for RemoteShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteShards")
            .field("url", &self.shared.url)
            .field("cache_dir", &self.shared.dir.path())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_as_people_write_them() {
        assert_eq!(parse_bytes("1000").ok(), Some(1000));
        assert_eq!(parse_bytes("512M").ok(), Some(512 << 20));
        assert_eq!(parse_bytes("16GiB").ok(), Some(16 << 30));
        assert_eq!(parse_bytes("1.5k").ok(), Some(1536));
        for bad in ["", "G", "12Q", "-1", "1.2.3M"] {
            assert!(matches!(parse_bytes(bad), Err(Error::Usage(_))), "{bad}");
        }
        assert!(is_remote("s3://b/p/") && is_remote("https://h/d") && !is_remote("/data/ds"));
    }
}
