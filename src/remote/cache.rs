//! The bounded local cache of a remote dataset's shards: which shards are on disk, which are being
//! fetched, which are in use, and which to evict — [`Residency`], pure bookkeeping, unit-tested
//! here — and the directory that holds them, [`CacheDir`].
//!
//! The rules, against the failures of other streaming caches:
//! - **The limit holds.** Bytes are reserved before a fetch starts (its `.part` file counts), so
//!   the directory never holds more than the limit, partial downloads included. A limit below the
//!   largest shard is refused when the dataset is opened (a whole shard must fit; a cache that
//!   waits for room it can never have deadlocks — mosaicml/streaming#417).
//! - **Never evict what is in use or needed next.** A shard being read is pinned; a reader pins
//!   one shard at a time and only for one record, so a reader waiting for room always gets it.
//!   With a plan (the epoch's order, [`Residency::set_plan`]) the victim is the shard needed
//!   furthest in the future or not at all (Belady's rule; least recently used among those not
//!   needed), and a prefetch only ever evicts a shard needed later than the one it fetches — so
//!   prefetching never thrashes (mosaicml/streaming#339). Without a plan: least recently used.
//! - **Never delete what is not ours.** Only files this cache wrote are deleted: those listed in
//!   its index (`alexpipe-cache.json`, which marks the directory as a cache), or named as its
//!   files are in a directory so marked. A non-empty directory without the marker is refused
//!   (mosaicml/streaming#988 deleted a local dataset).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The index file: its presence marks a directory as an alexpipe cache.
pub const INDEX_FILE: &str = "alexpipe-cache.json";
/// Held (an advisory lock) by the one process using a cache directory.
const LOCK_FILE: &str = "alexpipe-cache.lock";
/// Value of the index's `format`.
const INDEX_FORMAT: &str = "alexpipe-cache";
/// How long a failed fetch is reported to further readers of the same shard before it is tried
/// again.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// What the cache holds of one shard.
#[derive(Debug)]
pub(crate) enum State<T> {
    /// In the directory from an earlier run, not yet checked against its checksum.
    OnDisk,
    /// Being fetched (or checked); its bytes are reserved.
    Fetching,
    /// Checked and open.
    Ready(T),
    /// The last fetch failed, at that instant, with that message.
    Failed(Instant, String),
}

#[derive(Debug)]
struct Slot<T> {
    bytes: u64,
    state: State<T>,
    pins: usize,
    last_used: u64,
    /// Found damaged: no new reader gets it; it goes when the last reader leaves.
    condemned: bool,
}

/// What [`Residency::unpin`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unpinned {
    /// Threads wait for room and the shard is now unpinned: wake them.
    pub wake: bool,
    /// The shard was condemned and this was its last reader: it is out of the bookkeeping
    /// (delete its file).
    pub removed: bool,
}

/// A cached file of another dataset, or of another version of this one: evicted first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Foreign {
    /// Its file name in the cache directory.
    pub name: String,
    /// Its length.
    pub bytes: u64,
}

/// What [`Residency::lookup`] found.
#[derive(Debug)]
pub(crate) enum Lookup<'a, T> {
    /// Not in the cache.
    Missing,
    /// On disk from an earlier run: to be checked (claim it with [`Residency::claim`]).
    OnDisk,
    /// Being fetched by another thread: wait.
    Fetching,
    /// Open.
    Ready(&'a T),
    /// The last fetch failed recently.
    Failed(&'a str),
}

/// Who is asking for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// A reader, now: any unpinned shard may go.
    Now,
    /// The prefetcher: only shards needed later than the one it fetches (or not at all) may go.
    Ahead,
}

/// What must leave the cache to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Shards of this dataset.
    pub shards: Vec<usize>,
    /// Files of other datasets.
    pub foreign: Vec<Foreign>,
}

/// The cache's bookkeeping: per shard its state, pins and last use; the bytes reserved; the
/// plan of the epoch under way. `T` is what an open shard is (the shard reader; `()` in tests).
#[derive(Debug)]
pub(crate) struct Residency<T> {
    limit: u64,
    used: u64,
    slots: HashMap<usize, Slot<T>>,
    foreign: Vec<Foreign>,
    clock: u64,
    /// For each shard, the plan's positions that will read it, ascending.
    uses: Vec<VecDeque<usize>>,
    /// Threads waiting for room (an unpin then wakes them).
    pub waiting: usize,
}

impl<T> Residency<T> {
    /// An empty cache of `limit` bytes for a dataset of `shards` shards.
    pub(crate) fn new(limit: u64, shards: usize) -> Residency<T> {
        Residency {
            limit,
            used: 0,
            slots: HashMap::new(),
            foreign: Vec::new(),
            clock: 0,
            uses: vec![VecDeque::new(); shards],
            waiting: 0,
        }
    }

    /// Bytes on disk or reserved.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Records a shard found on disk (unchecked).
    pub(crate) fn add_on_disk(&mut self, shard: usize, bytes: u64) {
        self.used += bytes;
        self.clock += 1;
        self.slots.insert(
            shard,
            Slot {
                bytes,
                state: State::OnDisk,
                pins: 0,
                last_used: self.clock,
                condemned: false,
            },
        );
    }

    /// Records a file of another dataset found in the directory.
    pub(crate) fn add_foreign(&mut self, file: Foreign) {
        self.used += file.bytes;
        self.foreign.push(file);
    }

    /// What the cache holds of `shard`.
    pub(crate) fn lookup(&self, shard: usize) -> Lookup<'_, T> {
        match self.slots.get(&shard).map(|s| (s.condemned, &s.state)) {
            // Damaged, readers still on it: wait for it to go, then fetch it again.
            Some((true, _)) => Lookup::Fetching,
            Some((false, state)) => match state {
                State::OnDisk => Lookup::OnDisk,
                State::Fetching => Lookup::Fetching,
                State::Ready(t) => Lookup::Ready(t),
                State::Failed(at, msg) if at.elapsed() < FAILURE_MEMORY => Lookup::Failed(msg),
                State::Failed(..) => Lookup::Missing,
            },
            None => Lookup::Missing,
        }
    }

    /// Marks an [`State::OnDisk`] shard as being checked (its bytes are already counted).
    pub(crate) fn claim(&mut self, shard: usize) {
        if let Some(s) = self.slots.get_mut(&shard) {
            s.state = State::Fetching;
        }
    }

    /// Pins an open shard for one read; counts the read against the plan.
    pub(crate) fn pin(&mut self, shard: usize) {
        self.clock += 1;
        if let Some(s) = self.slots.get_mut(&shard) {
            s.pins += 1;
            s.last_used = self.clock;
        }
        if let Some(u) = self.uses.get_mut(shard) {
            u.pop_front();
        }
    }

    /// Ends a read (see [`Unpinned`]).
    pub(crate) fn unpin(&mut self, shard: usize) -> Unpinned {
        let Some(s) = self.slots.get_mut(&shard) else {
            return Unpinned::default();
        };
        s.pins = s.pins.saturating_sub(1);
        if s.pins > 0 {
            return Unpinned::default();
        }
        let removed = s.condemned;
        if removed {
            self.used -= s.bytes;
            self.slots.remove(&shard);
        }
        Unpinned {
            wake: self.waiting > 0 || removed,
            removed,
        }
    }

    /// Marks a pinned shard whose copy turned out damaged: no reader gets it again, and the last
    /// one to leave it removes it ([`Unpinned::removed`]); the next reader fetches it again.
    pub(crate) fn condemn(&mut self, shard: usize) {
        if let Some(s) = self.slots.get_mut(&shard) {
            s.condemned = true;
        }
    }

    /// The plan of an epoch: the shard each of its reads needs, in order.
    pub(crate) fn set_plan(&mut self, shards_in_order: impl IntoIterator<Item = usize>) {
        self.uses.iter_mut().for_each(VecDeque::clear);
        for (position, shard) in shards_in_order.into_iter().enumerate() {
            if let Some(u) = self.uses.get_mut(shard) {
                u.push_back(position);
            }
        }
    }

    /// The plan position at which `shard` is next read, if it is.
    fn next_use(&self, shard: usize) -> Option<usize> {
        self.uses.get(shard).and_then(|u| u.front().copied())
    }

    /// The shard the prefetcher should bring in next: the one the plan needs soonest among those
    /// not cached (or cached unchecked).
    pub(crate) fn next_to_prefetch(&self) -> Option<usize> {
        (0..self.uses.len())
            .filter(|&k| {
                matches!(
                    self.lookup(k),
                    Lookup::Missing | Lookup::OnDisk | Lookup::Failed(_)
                )
            })
            .filter_map(|k| self.next_use(k).map(|u| (u, k)))
            .filter(|&(_, k)| !matches!(self.lookup(k), Lookup::Failed(_)))
            .min()
            .map(|(_, k)| k)
    }

    /// Reserves `bytes` for fetching `shard`, choosing what to evict: `None` when that is not
    /// possible now (wait for a read to end or a fetch to finish). On success the shard is
    /// [`State::Fetching`] and the victims are out of the bookkeeping (delete their files).
    pub(crate) fn reserve(&mut self, shard: usize, bytes: u64, need: Need) -> Option<Evicted> {
        if bytes > self.limit {
            return None;
        }
        let mine = self.next_use(shard);
        if need == Need::Ahead && mine.is_none() {
            return None;
        }
        // Candidates: other datasets' files first, then this dataset's unpinned shards not
        // needed again (least recently used first), then those needed furthest ahead.
        let mut free = self.limit - self.used.min(self.limit);
        let mut evicted = Evicted::default();
        let mut foreign = self.foreign.len();
        while free < bytes && foreign > 0 {
            foreign -= 1;
            free += self.foreign[0].bytes;
            evicted.foreign.push(self.foreign.remove(0));
        }
        if free < bytes {
            let mut candidates: Vec<(bool, std::cmp::Reverse<usize>, u64, usize)> = self
                .slots
                .iter()
                .filter(|(&k, s)| {
                    k != shard
                        && s.pins == 0
                        && matches!(s.state, State::OnDisk | State::Ready(_) | State::Failed(..))
                })
                .map(|(&k, s)| {
                    let next = self.next_use(k);
                    // Sorts: not needed (false) before needed; furthest next use first; then least
                    // recently used.
                    (
                        next.is_some(),
                        std::cmp::Reverse(next.unwrap_or(usize::MAX)),
                        s.last_used,
                        k,
                    )
                })
                .filter(|&(needed, std::cmp::Reverse(next), _, _)| {
                    need == Need::Now || !needed || mine.is_some_and(|m| next > m)
                })
                .collect();
            candidates.sort();
            for (_, _, _, k) in candidates {
                if free >= bytes {
                    break;
                }
                free += self.slots[&k].bytes;
                evicted.shards.push(k);
            }
        }
        if free < bytes {
            // Put the foreign files back: nothing is evicted unless the fetch can start.
            for f in evicted.foreign.drain(..).rev() {
                self.foreign.insert(0, f);
            }
            return None;
        }
        for k in &evicted.shards {
            if let Some(s) = self.slots.remove(k) {
                self.used -= s.bytes;
            }
        }
        for f in &evicted.foreign {
            self.used -= f.bytes;
        }
        // A failed shard's slot is replaced.
        if let Some(old) = self.slots.remove(&shard) {
            self.used -= old.bytes;
        }
        self.clock += 1;
        self.used += bytes;
        self.slots.insert(
            shard,
            Slot {
                bytes,
                state: State::Fetching,
                pins: 0,
                last_used: self.clock,
                condemned: false,
            },
        );
        Some(evicted)
    }

    /// A fetch (or check) of `shard` succeeded.
    pub(crate) fn ready(&mut self, shard: usize, open: T) {
        if let Some(s) = self.slots.get_mut(&shard) {
            s.state = State::Ready(open);
        }
    }

    /// A fetch of `shard` failed: its bytes are released; readers get `msg` for a while.
    pub(crate) fn failed(&mut self, shard: usize, msg: String) {
        if let Some(s) = self.slots.get_mut(&shard) {
            self.used -= s.bytes;
            s.bytes = 0;
            s.state = State::Failed(Instant::now(), msg);
        }
    }

    /// Evicts down to the limit (a cache opened with a smaller limit than it was filled with).
    pub(crate) fn shrink_to_limit(&mut self) -> Evicted {
        let mut evicted = Evicted::default();
        while self.used > self.limit && !self.foreign.is_empty() {
            let f = self.foreign.remove(0);
            self.used -= f.bytes;
            evicted.foreign.push(f);
        }
        let mut lru: Vec<(u64, usize)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.pins == 0 && matches!(s.state, State::OnDisk))
            .map(|(&k, s)| (s.last_used, k))
            .collect();
        lru.sort();
        for (_, k) in lru {
            if self.used <= self.limit {
                break;
            }
            if let Some(s) = self.slots.remove(&k) {
                self.used -= s.bytes;
                evicted.shards.push(k);
            }
        }
        evicted
    }

    /// Shards checked and open, or on disk: what the index lists.
    pub(crate) fn on_disk(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Ready(_) | State::OnDisk))
            .map(|(&k, _)| k)
    }

    /// Files of other datasets still in the directory.
    pub(crate) fn foreign(&self) -> &[Foreign] {
        &self.foreign
    }
}

/// One cached file, as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    /// File name in the cache directory.
    pub file: String,
    /// The URL it is a copy of.
    pub url: String,
    /// Its length.
    pub bytes: u64,
    /// Its CRC-32C, as the dataset's manifest gives it.
    pub crc32c: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    format: String,
    version: u32,
    files: Vec<IndexEntry>,
}

/// A cache directory, held by this process (an advisory lock) while the dataset is open.
pub(crate) struct CacheDir {
    dir: PathBuf,
    _lock: fs::File,
}

impl CacheDir {
    /// Opens (creating it if needed) the cache directory `dir` and locks it. `Ok(None)` when
    /// another process holds it.
    pub(crate) fn open(dir: &Path) -> Result<Option<(CacheDir, Vec<IndexEntry>)>> {
        fs::create_dir_all(dir).at(dir)?;
        let index_path = dir.join(INDEX_FILE);
        if !index_path.exists() {
            let foreign = fs::read_dir(dir)
                .at(dir)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .find(|n| n != LOCK_FILE);
            if let Some(name) = foreign {
                return Err(Error::Usage(format!(
                    "{}: not an alexpipe cache (no {INDEX_FILE}) and not empty (it holds {:?}): the cache deletes files to stay under its limit, so it only uses an empty directory or one of its own — give another cache directory",
                    dir.display(),
                    name
                )));
            }
            write_index(dir, &[])?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let text = fs::read(&index_path).at(&index_path)?;
        let index: Index = serde_json::from_slice(&text).map_err(|e| {
            Error::format(
                &index_path,
                format!("not a cache index ({e}): delete the cache directory, or give another"),
            )
        })?;
        if index.format != INDEX_FORMAT {
            return Err(Error::format(
                &index_path,
                "not an alexpipe cache index: give another cache directory",
            ));
        }
        let cache = CacheDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        let mut listed = Vec::new();
        for e in index.files {
            // Only plain names this cache would write; the length must still be right.
            let len = fs::metadata(dir.join(&e.file)).map(|m| m.len()).ok();
            if is_cache_name(&e.file) && len == Some(e.bytes) {
                listed.push(e);
            } else if is_cache_name(&e.file) {
                cache.remove(&e.file);
            }
        }
        // Left over from a run that stopped mid-fetch, or before its index was written.
        for entry in fs::read_dir(dir).at(dir)?.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".part").unwrap_or(&name);
            if is_cache_name(stem) && !listed.iter().any(|e| e.file == name) {
                cache.remove(&name);
            }
        }
        Ok(Some((cache, listed)))
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of cached file `name`.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Deletes cached file `name` (a name this cache wrote).
    pub(crate) fn remove(&self, name: &str) {
        if is_cache_name(name.strip_suffix(".part").unwrap_or(name)) {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    /// Rewrites the index.
    pub(crate) fn write_index(&self, files: &[IndexEntry]) -> Result<()> {
        write_index(&self.dir, files)
    }
}

fn write_index(dir: &Path, files: &[IndexEntry]) -> Result<()> {
    let index = Index {
        format: INDEX_FORMAT.into(),
        version: 1,
        files: files.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| Error::Internal(format!("cache index: {e}")))?;
    crate::atomic_file::write(&dir.join(INDEX_FILE), &bytes)
}

/// The name of the cached copy of the file at `url`: 16 hex digits of the URL's digest, `-`,
/// and the file's own name.
pub(crate) fn cache_name(url: &str, file: &str) -> String {
    format!("{}-{file}", crate::state::Digest::new().str(url).hex())
}

/// True for a name [`cache_name`] makes.
fn is_cache_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 17
        && b[16] == b'-'
        && b[..16].iter().all(|c| c.is_ascii_hexdigit())
        && !name.contains(['/', '\\', '\0'])
        && name != INDEX_FILE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(r: &mut Residency<()>, k: usize, bytes: u64, need: Need) -> Evicted {
        let e = r.reserve(k, bytes, need).expect("room");
        r.ready(k, ());
        e
    }

    #[test]
    fn the_limit_holds_and_pinned_shards_stay() {
        let mut r = Residency::<()>::new(250, 5);
        ready(&mut r, 0, 100, Need::Now);
        ready(&mut r, 1, 100, Need::Now);
        assert_eq!(r.used(), 200);
        r.pin(0);
        r.pin(1);
        // Both pinned: no room for a third until a read ends.
        assert!(r.reserve(2, 100, Need::Now).is_none());
        assert_eq!(r.used(), 200);
        r.unpin(0);
        let e = r
            .reserve(2, 100, Need::Now)
            .expect("room once 0 is unpinned");
        assert_eq!(e.shards, vec![0]);
        assert!(r.used() <= 250);
        // Larger than the whole cache: never.
        assert!(r.reserve(3, 251, Need::Now).is_none());
    }

    #[test]
    fn without_a_plan_the_least_recently_used_goes() {
        let mut r = Residency::<()>::new(300, 5);
        for k in 0..3 {
            ready(&mut r, k, 100, Need::Now);
        }
        r.pin(0);
        r.unpin(0); // 0 is now the most recently used
        let e = r.reserve(3, 100, Need::Now).expect("room");
        assert_eq!(e.shards, vec![1]);
    }

    #[test]
    fn with_a_plan_the_shard_needed_furthest_ahead_goes_and_prefetch_never_thrashes() {
        let mut r = Residency::<()>::new(300, 6);
        // The epoch reads shards 0 0 1 1 2 2 3 3 4 4 5 5.
        r.set_plan([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(r.next_to_prefetch(), Some(0));
        for k in 0..3 {
            assert_eq!(r.next_to_prefetch(), Some(k));
            ready(&mut r, k, 100, Need::Ahead);
        }
        // Full of 0, 1, 2, all needed before 3: prefetching 3 may evict none of them.
        assert_eq!(r.next_to_prefetch(), Some(3));
        assert!(r.reserve(3, 100, Need::Ahead).is_none());
        // Shard 0 is read twice: no longer needed, so it makes room for 3.
        for _ in 0..2 {
            r.pin(0);
            r.unpin(0);
        }
        let e = r.reserve(3, 100, Need::Ahead).expect("room");
        assert_eq!(e.shards, vec![0]);
        r.ready(3, ());
        // A reader needing 5 now evicts the one needed furthest ahead (3), not 1 or 2.
        let e = r.reserve(5, 100, Need::Now).expect("room");
        assert_eq!(e.shards, vec![3]);
    }

    #[test]
    fn a_damaged_copy_goes_when_its_last_reader_leaves() {
        let mut r = Residency::<()>::new(300, 2);
        ready(&mut r, 0, 100, Need::Now);
        r.pin(0);
        r.pin(0);
        r.condemn(0);
        // No new reader gets it; the first reader leaving does not remove it yet.
        assert!(matches!(r.lookup(0), Lookup::Fetching));
        assert_eq!(r.unpin(0), Unpinned::default());
        let last = r.unpin(0);
        assert!(last.removed && last.wake);
        assert_eq!(r.used(), 0);
        assert!(matches!(r.lookup(0), Lookup::Missing));
    }

    #[test]
    fn foreign_files_go_first_and_failures_release_their_bytes() {
        let mut r = Residency::<()>::new(200, 3);
        r.add_foreign(Foreign {
            name: "0123456789abcdef-old.alxshard".into(),
            bytes: 150,
        });
        let e = r.reserve(0, 100, Need::Now).expect("room");
        assert_eq!(e.foreign.len(), 1);
        assert_eq!(r.used(), 100);
        r.failed(0, "HTTP 500".into());
        assert_eq!(r.used(), 0);
        assert!(matches!(r.lookup(0), Lookup::Failed("HTTP 500")));
    }

    #[test]
    fn a_marked_directory_only_loses_its_own_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let foreign = dir.path().join("precious.txt");
        fs::write(&foreign, b"not a cached copy").expect("write");
        // Not empty and not a cache: refused, nothing touched.
        assert!(
            matches!(CacheDir::open(dir.path()), Err(Error::Usage(m)) if m.contains("not an alexpipe cache"))
        );
        assert!(foreign.exists());
        let cache_dir = dir.path().join("cache");
        let (cache, listed) = CacheDir::open(&cache_dir).expect("open").expect("lock");
        assert!(listed.is_empty());
        // A stray .part of ours goes at the next open; a file of the user's stays.
        let part = cache_dir.join(format!("{}.part", cache_name("http://h/d/s0", "s0")));
        fs::write(&part, b"half").expect("write");
        let mine = cache_dir.join("notes.txt");
        fs::write(&mine, b"user file").expect("write");
        cache.remove("notes.txt");
        assert!(mine.exists());
        // Another process (here: a second open) cannot hold it at the same time.
        assert!(CacheDir::open(&cache_dir).expect("open").is_none());
        drop(cache);
        let (_cache, _) = CacheDir::open(&cache_dir).expect("open").expect("lock");
        assert!(!part.exists());
        assert!(mine.exists());
    }
}
