//! Opening a dataset: the manifest is validated, every shard is opened and its header and record
//! table checked against the manifest (sizes, counts, bounds, table checksum), and the mean image
//! against its checksum. Records are then read with `pread` (not a memory map) into the caller's
//! buffer and their CRC-32C checked on *every* read, before any byte is used: a shard that is
//! truncated, overwritten or failing while a loader has it open gives an error naming the file —
//! never SIGBUS, never pixels other than those the record table vouches for
//! (`docs/RELIABILITY.md`). [`ShardSource::verify`] checks every byte of every file. This is the
//! shard implementation of the [`RecordSource`] seam.

use std::fs;
use std::path::{Path, PathBuf};

use std::cell::RefCell;

use super::format::{Entry, ShardHeader, ENTRY_LEN, HEADER_LEN};
use super::manifest::{decode_npy_f32, Manifest};
use crate::error::{Error, IoContext, Result};
use crate::prep::{decode_rgb, DecodeOptions, ResizeCrop};
use crate::source::{DatasetInfo, Mode, RecordSource};
use crate::stats::Stats;

/// One opened, checked shard file (also what [`crate::remote`] opens from its cache).
pub(crate) struct Shard {
    pub(crate) path: PathBuf,
    /// Held open from [`Dataset::open`] on: a shard replaced (renamed over) or deleted later is
    /// still read from the file that was validated.
    file: fs::File,
    /// Length at open, as the manifest and header say.
    len: u64,
    pub(crate) entries: Vec<Entry>,
}

impl Shard {
    /// Reads `out.len()` bytes at `offset` with `pread`: never a memory access that can fault, so
    /// a file truncated or failing under us gives an error, not SIGBUS.
    fn read_at(&self, offset: u64, out: &mut [u8], what: &str) -> Result<()> {
        read_exact_at(&self.file, out, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                let now = self.file.metadata().map(|m| m.len()).unwrap_or(0);
                Error::corrupt(
                    &self.path,
                    format!(
                        "{what} ends at byte {}, but the file is now {now} bytes (it was {} when the dataset was opened): it was truncated or overwritten while in use — rebuild the dataset, and never modify a dataset that a loader has open",
                        offset + out.len() as u64,
                        self.len
                    ),
                )
            } else {
                Error::io(&self.path, e)
            }
        })
    }
}

/// The records of an opened shard dataset directory.
pub struct ShardSource {
    dir: PathBuf,
    manifest: Manifest,
    info: DatasetInfo,
    shards: Vec<Shard>,
    /// `shard_starts[k]` is the index of shard k's first record.
    shard_starts: Vec<u64>,
}

impl ShardSource {
    /// Opens and validates the shard dataset at `dir`; with `load_stats`, also its statistics
    /// (the mean image checked against its checksum). Without, for recomputing statistics that
    /// are missing or damaged.
    pub fn open(dir: &Path, load_stats: bool) -> Result<(ShardSource, Option<Stats>)> {
        let dir = dir.to_path_buf();
        let manifest = Manifest::read(&dir)?;
        raise_open_file_limit(manifest.shards.len());
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut shard_starts = Vec::with_capacity(manifest.shards.len());
        let mut next = 0u64;
        for info in &manifest.shards {
            let path = dir.join(&info.file);
            if info.first_record != next {
                return Err(Error::format(
                    &path,
                    "manifest shard ranges are not contiguous; rebuild the dataset",
                ));
            }
            let shard = open_shard(
                &path,
                &manifest,
                info.first_record,
                info.num_records,
                info.bytes,
            )?;
            shard_starts.push(next);
            next = next.checked_add(info.num_records).ok_or_else(|| {
                Error::format(
                    &path,
                    "manifest record counts overflow; rebuild the dataset",
                )
            })?;
            shards.push(shard);
        }
        if next != manifest.num_records {
            return Err(Error::format(
                dir.join("manifest.json"),
                format!(
                    "shards hold {next} records, manifest says {}; rebuild the dataset",
                    manifest.num_records
                ),
            ));
        }
        let stats = if load_stats {
            let mean_path = dir.join(&manifest.stats.mean_image);
            let mean_bytes = fs::read(&mean_path).at(&mean_path)?;
            Some(stats_from_mean_image(&manifest, &mean_bytes, &mean_path)?)
        } else {
            None
        };
        let info = manifest.dataset_info(load_stats);
        let source = ShardSource {
            dir,
            manifest,
            info,
            shards,
            shard_starts,
        };
        Ok((source, stats))
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn locate(&self, index: usize) -> Result<(&Shard, &Entry)> {
        self.check_index(index)?;
        let k = self.shard_starts.partition_point(|&s| s <= index as u64) - 1;
        let shard = &self.shards[k];
        Ok((shard, &shard.entries[index - self.shard_starts[k] as usize]))
    }

    fn read_checked(&self, index: usize, shard: &Shard, e: &Entry, out: &mut [u8]) -> Result<()> {
        shard.read_checked(index, e, out)
    }
}

impl Shard {
    /// Reads record `index` (table entry `e`) into `out` and checks its CRC-32C.
    pub(crate) fn read_checked(&self, index: usize, e: &Entry, out: &mut [u8]) -> Result<()> {
        self.read_at(e.offset, out, &format!("record {index}"))?;
        if crc32c::crc32c(out) != e.crc {
            return Err(Error::corrupt(
                &self.path,
                format!("record {index} fails its checksum: the shard is corrupt (or was modified after the dataset was opened) — rebuild the dataset"),
            ));
        }
        Ok(())
    }
}

/// The statistics of `manifest` with the mean image from `bytes` (read from `path`, a file or a
/// URL), checked against its size and checksum in the manifest first: the mean is subtracted from
/// every pixel the loader serves.
pub(crate) fn stats_from_mean_image(
    manifest: &Manifest,
    bytes: &[u8],
    path: &Path,
) -> Result<Stats> {
    let s = manifest.size as usize;
    let listed = manifest
        .files
        .iter()
        .find(|f| f.file == manifest.stats.mean_image);
    if !listed.is_some_and(|f| f.bytes == bytes.len() as u64 && f.crc32c == crc32c::crc32c(bytes)) {
        return Err(Error::corrupt(
            path,
            "does not match the size and checksum in manifest.json: damaged, or being rewritten by `build-shards --stats-only` right now — retry, or run `build-shards --stats-only` on the dataset",
        ));
    }
    let mean_image = decode_npy_f32(bytes, &[s, s, 3], path)?;
    Ok(manifest.stats.to_stats(manifest.size, mean_image))
}

/// Record `index` of `shard` as `size`×`size`×3 pixels in `out`, read and checked, decoded as the
/// manifest's mode requires (§2's decode, short-side resize and centre crop for original records);
/// returns its label.
pub(crate) fn read_shard_pixels(
    manifest: &Manifest,
    shard: &Shard,
    index: usize,
    e: &Entry,
    resize: &mut ResizeCrop,
    out: &mut [u8],
) -> Result<u32> {
    let s = manifest.size;
    let mode = manifest.mode;
    if mode == Mode::Raw {
        // Straight into the caller's buffer: no copy besides the read itself.
        shard.read_checked(index, e, out)?;
        return Ok(e.label);
    }
    thread_local! {
        static RECORD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    RECORD.with_borrow_mut(|buf| {
        buf.resize(e.len as usize, 0);
        shard.read_checked(index, e, buf)?;
        let opts = DecodeOptions {
            max_pixels: manifest.build.max_pixels,
            draft_for: (manifest.build.draft && mode == Mode::Original).then_some(s),
        };
        let img = decode_rgb(buf, &opts)
            .map_err(|r| Error::format(&shard.path, format!("record {index}: {r}")))?;
        let whole = manifest.build.max_side.is_some();
        if mode == Mode::Jpeg && !whole && (img.width, img.height) != (s, s) {
            return Err(Error::format(
                &shard.path,
                format!(
                    "record {index}: JPEG is {}x{}, expected {s}x{s}",
                    img.width, img.height
                ),
            ));
        }
        resize.resize_center_crop(&img, s, out);
        Ok(e.label)
    })
}

impl RecordSource for ShardSource {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn location(&self) -> &Path {
        &self.dir
    }

    /// Label of record `index` (no checksum needed: the table is checked at open).
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.locate(index)?.1.label)
    }

    fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
        let (shard, e) = self.locate(index)?;
        buf.resize(e.len as usize, 0);
        self.read_checked(index, shard, e, buf)?;
        Ok(e.label)
    }

    /// Original mode applies §2's decode, short-side resize and centre crop, exactly as the build
    /// did. The record's checksum is verified before it is used.
    fn read_pixels(&self, index: usize, resize: &mut ResizeCrop, out: &mut [u8]) -> Result<u32> {
        let (shard, e) = self.locate(index)?;
        read_shard_pixels(&self.manifest, shard, index, e, resize, out)
    }

    /// Checks every byte: each shard's whole-file CRC-32C against the manifest, every record's CRC,
    /// and the other files' checksums. Returns the number of records checked.
    fn provenance(&self) -> Result<String> {
        let path = self.dir.join(super::manifest::INDEX_FILE);
        fs::read_to_string(&path).at(&path)
    }

    fn units(&self) -> Option<&[u64]> {
        Some(&self.shard_starts)
    }

    fn verify(&self) -> Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        for (shard, info) in self.shards.iter().zip(&self.manifest.shards) {
            let mut crc = 0u32;
            let mut at = 0u64;
            while at < shard.len {
                let n = (shard.len - at).min(buf.len() as u64) as usize;
                shard.read_at(at, &mut buf[..n], "the file")?;
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                at += n as u64;
            }
            let now = shard.file.metadata().at(&shard.path)?.len();
            if crc != info.crc32c || now != shard.len {
                return Err(Error::corrupt(&shard.path, "file checksum does not match the manifest: the shard is corrupt — rebuild the dataset"));
            }
        }
        for f in &self.manifest.files {
            let p = self.dir.join(&f.file);
            let bytes = fs::read(&p).at(&p)?;
            if bytes.len() as u64 != f.bytes || crc32c::crc32c(&bytes) != f.crc32c {
                return Err(Error::corrupt(&p, "checksum does not match the manifest — rebuild the dataset (or --stats-only for mean_image.npy)"));
            }
        }
        for (k, shard) in self.shards.iter().enumerate() {
            for (i, e) in shard.entries.iter().enumerate() {
                let index = self.shard_starts[k] as usize + i;
                buf.resize(e.len as usize, 0);
                self.read_checked(index, shard, e, &mut buf)?;
            }
        }
        Ok(self.manifest.num_records)
    }
}

/// Opens shard file `path` and checks its header and record table against the manifest `m` (it
/// holds records `first..first + count` in `bytes` bytes).
pub(crate) fn open_shard(
    path: &Path,
    m: &Manifest,
    first: u64,
    count: u64,
    bytes: u64,
) -> Result<Shard> {
    let file = fs::File::open(path).map_err(|e| {
        if e.raw_os_error() == Some(EMFILE) {
            Error::format(
                path,
                format!("{e}: a dataset keeps each of its {} shards open; raise the limit on open files (`ulimit -n`) or rebuild with a larger --shard-size", m.shards.len()),
            )
        } else {
            Error::io(path, e)
        }
    })?;
    let len = file.metadata().at(path)?.len();
    if len != bytes {
        return Err(Error::format(
            path,
            format!("{len} bytes, the manifest says {bytes}: truncated or replaced — rebuild the dataset"),
        ));
    }
    let mut head = [0u8; HEADER_LEN];
    let got = read_prefix(&file, &mut head).at(path)?;
    let header = ShardHeader::decode(&head[..got], path)?;
    let bad = |msg: String| Error::format(path, format!("{msg}; rebuild the dataset"));
    if header.mode != m.mode
        || header.size != m.size
        || header.count != count
        || header.file_len != len
    {
        return Err(bad(format!(
            "header (mode {}, size {}, {} records, {} bytes) disagrees with the manifest (mode {}, size {}, {count} records, {len} bytes)",
            header.mode.name(),
            header.size,
            header.count,
            header.file_len,
            m.mode.name(),
            m.size
        )));
    }
    let table_end = count
        .checked_mul(ENTRY_LEN as u64)
        .and_then(|t| t.checked_add(HEADER_LEN as u64));
    let Some(table_end) =
        table_end.filter(|&t| t <= header.data_offset && header.data_offset <= len)
    else {
        return Err(bad("record table overlaps the data region".into()));
    };
    let mut table = vec![0u8; (table_end - HEADER_LEN as u64) as usize];
    read_exact_at(&file, &mut table, HEADER_LEN as u64).at(path)?;
    if crc32c::crc32c(&table) != header.table_crc {
        return Err(bad("record table checksum mismatch".into()));
    }
    let raw_len = m.size as u64 * m.size as u64 * 3;
    let mut entries = Vec::with_capacity(count as usize);
    for (i, chunk) in table.chunks_exact(ENTRY_LEN).enumerate() {
        let e = Entry::decode(chunk);
        let in_bounds = e.offset >= header.data_offset
            && e.offset.checked_add(e.len).is_some_and(|end| end <= len);
        if !in_bounds
            || e.global_index != first + i as u64
            || (m.mode == Mode::Raw && e.len != raw_len)
        {
            return Err(bad(format!("record table entry {i} is inconsistent")));
        }
        if e.label as usize >= m.classes.len() {
            return Err(bad(format!(
                "record {} has label {} but there are {} classes",
                e.global_index,
                e.label,
                m.classes.len()
            )));
        }
        entries.push(e);
    }
    Ok(Shard {
        path: path.to_path_buf(),
        file,
        len,
        entries,
    })
}

/// "Too many open files".
#[cfg(target_os = "linux")]
const EMFILE: i32 = libc::EMFILE;
#[cfg(not(target_os = "linux"))]
const EMFILE: i32 = 24;

/// Shards stay open, one descriptor each (ImageNet at 1,024 records per shard: 1,252). Where the
/// soft limit on open files is too low for that, raise it towards the hard limit, as Go's runtime
/// does for every program; if that is not enough, opening a shard fails with a message saying so.
fn raise_open_file_limit(shards: usize) {
    #[cfg(target_os = "linux")]
    {
        let want = (shards as libc::rlim_t).saturating_add(256);
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
                r.rlim_cur = r.rlim_max.min(want);
                libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = shards;
}

/// Reads up to `buf.len()` bytes from the start of `file`; returns how many there were.
fn read_prefix(file: &fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(file, &mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Positioned read (`pread`): no shared file cursor, so any number of threads read at once.
fn read_at(file: &fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
}

/// Fills `buf` from `offset`; `UnexpectedEof` when the file ends first.
fn read_exact_at(file: &fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
