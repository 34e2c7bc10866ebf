//! Opening a dataset: the manifest is validated, every shard is memory-mapped and its header and
//! record table checked against the manifest (sizes, counts, bounds, table checksum), so that a
//! record access can never read outside a shard. Record checksums are verified lazily: the first
//! time a record is read through [`Dataset::record`] (a bit per record remembers it, so later reads
//! cost nothing); [`Dataset::verify`] checks every byte of every file.

use std::fs;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use super::format::{Entry, Mode, ShardHeader, ENTRY_LEN, HEADER_LEN};
use super::manifest::{decode_npy_f32, Manifest};
use crate::error::{Error, IoContext, Result};
use crate::prep::{decode_rgb, DecodeOptions, ResizeCrop};
use crate::stats::Stats;

struct Shard {
    path: PathBuf,
    map: Mmap,
    entries: Vec<Entry>,
    /// One bit per record: its checksum has been verified.
    verified: Vec<AtomicU64>,
}

/// A record as stored: its bytes borrowed from the shard's memory map.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Class index.
    pub label: u32,
    /// Raw pixels (raw mode), JPEG bytes (jpeg mode) or the source file (original mode).
    pub bytes: &'a [u8],
}

/// An opened alexpipe dataset directory.
pub struct Dataset {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    /// `shard_starts[k]` is the index of shard k's first record.
    shard_starts: Vec<u64>,
    /// `None` only when opened with [`Dataset::open_without_stats`].
    stats: Option<Stats>,
    /// The records of an HDF5 file ([`Dataset::open_hdf5`]); `None` for shards.
    h5: Option<crate::h5::H5Records>,
}

impl Dataset {
    /// Opens and validates the dataset at `dir`, statistics included. A file with an HDF5 signature
    /// opens as [`Dataset::open_hdf5`] with the default keys.
    pub fn open(dir: impl AsRef<Path>) -> Result<Dataset> {
        if crate::h5::is_hdf5_file(dir.as_ref()) {
            return Self::open_hdf5(dir, &crate::h5::H5Keys::default());
        }
        Self::open_inner(dir.as_ref(), true)
    }

    /// Opens an HDF5 file holding an N×S×S×3 uint8 image dataset and an N-long integer label
    /// dataset named by `keys` (statistics read from the file, or computed when it has none).
    /// Needs the `hdf5` feature.
    pub fn open_hdf5(path: impl AsRef<Path>, keys: &crate::h5::H5Keys) -> Result<Dataset> {
        let path = path.as_ref();
        let (records, manifest, stats) = crate::h5::H5Records::open(path, keys)?;
        Ok(Dataset {
            dir: path.to_path_buf(),
            manifest,
            shards: Vec::new(),
            shard_starts: Vec::new(),
            stats: Some(stats),
            h5: Some(records),
        })
    }

    /// True when the records come from an HDF5 file.
    pub fn is_hdf5(&self) -> bool {
        self.h5.is_some()
    }

    /// Opens the records only, for recomputing statistics that are missing or damaged.
    pub fn open_without_stats(dir: impl AsRef<Path>) -> Result<Dataset> {
        Self::open_inner(dir.as_ref(), false)
    }

    fn open_inner(dir: &Path, load_stats: bool) -> Result<Dataset> {
        let dir = dir.to_path_buf();
        let manifest = Manifest::read(&dir)?;
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
            next += info.num_records;
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
            let s = manifest.size as usize;
            let mean_path = dir.join(&manifest.stats.mean_image);
            let mean_bytes = fs::read(&mean_path).at(&mean_path)?;
            let mean_image = decode_npy_f32(&mean_bytes, &[s, s, 3], &mean_path)?;
            Some(manifest.stats.to_stats(manifest.size, mean_image))
        } else {
            None
        };
        Ok(Dataset {
            dir,
            manifest,
            shards,
            shard_starts,
            stats,
            h5: None,
        })
    }

    /// The dataset directory (the file, for HDF5).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.manifest.num_records as usize
    }

    /// True when the dataset has no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record layout.
    pub fn mode(&self) -> Mode {
        self.manifest.mode
    }

    /// Image side length.
    pub fn size(&self) -> u32 {
        self.manifest.size
    }

    /// Class names.
    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    /// Training-set statistics (`None` only after [`Dataset::open_without_stats`]).
    pub fn stats(&self) -> Option<&Stats> {
        self.stats.as_ref()
    }

    fn locate(&self, index: usize) -> Result<(&Shard, &Entry)> {
        if index >= self.len() {
            return Err(Error::Usage(format!(
                "record {index} is out of range: {} has {} records",
                self.dir.display(),
                self.len()
            )));
        }
        let k = self.shard_starts.partition_point(|&s| s <= index as u64) - 1;
        let shard = &self.shards[k];
        Ok((shard, &shard.entries[index - self.shard_starts[k] as usize]))
    }

    /// Label of record `index` (no checksum needed: the table is checked at open).
    pub fn label(&self, index: usize) -> Result<u32> {
        if let Some(h5) = &self.h5 {
            return h5.label(index);
        }
        Ok(self.locate(index)?.1.label)
    }

    /// Record `index`, its CRC-32C checked the first time it is read.
    pub fn record(&self, index: usize) -> Result<RecordRef<'_>> {
        if let Some(h5) = &self.h5 {
            return h5.record_in_place(index)?.ok_or_else(|| {
                Error::Usage(format!(
                    "{}: the images are compressed or filtered, so records have no bytes in place; use read_pixels",
                    self.dir.display()
                ))
            });
        }
        let (shard, e) = self.locate(index)?;
        let bytes = &shard.map[e.offset as usize..(e.offset + e.len) as usize];
        let local = (e.global_index - shard.entries[0].global_index) as usize;
        let (word, bit) = (&shard.verified[local / 64], 1u64 << (local % 64));
        if word.load(Ordering::Relaxed) & bit == 0 {
            if crc32c::crc32c(bytes) != e.crc {
                return Err(Error::format(
                    &shard.path,
                    format!("record {index} fails its checksum: the shard is corrupt — rebuild the dataset"),
                ));
            }
            word.fetch_or(bit, Ordering::Relaxed);
        }
        Ok(RecordRef {
            label: e.label,
            bytes,
        })
    }

    /// Record `index` read in place, when its `size`×`size`×3 pixels are stored as such (raw shards,
    /// unfiltered HDF5); `None` when they must be decoded or read through [`Dataset::read_pixels`].
    pub fn record_in_place(&self, index: usize) -> Result<Option<RecordRef<'_>>> {
        match &self.h5 {
            Some(h5) => h5.record_in_place(index),
            None if self.mode() == Mode::Raw => self.record(index).map(Some),
            None => Ok(None),
        }
    }

    /// Writes record `index`'s `size`×`size`×3 pixels into `out`, decoding as the mode requires
    /// (original mode applies §2's decode, short-side resize and centre crop, exactly as the build did).
    pub fn read_pixels(
        &self,
        index: usize,
        resize: &mut ResizeCrop,
        out: &mut [u8],
    ) -> Result<u32> {
        if let Some(h5) = &self.h5 {
            return h5.read_pixels(index, out);
        }
        let rec = self.record(index)?;
        let shard_path = &self.locate(index)?.0.path;
        let s = self.size();
        match self.mode() {
            Mode::Raw => out.copy_from_slice(rec.bytes),
            Mode::Jpeg | Mode::Original => {
                let opts = DecodeOptions {
                    max_pixels: self.manifest.build.max_pixels,
                    draft_for: (self.manifest.build.draft && self.mode() == Mode::Original)
                        .then_some(s),
                };
                let img = decode_rgb(rec.bytes, &opts)
                    .map_err(|r| Error::format(shard_path, format!("record {index}: {r}")))?;
                if self.mode() == Mode::Jpeg && (img.width, img.height) != (s, s) {
                    return Err(Error::format(
                        shard_path,
                        format!(
                            "record {index}: JPEG is {}x{}, expected {s}x{s}",
                            img.width, img.height
                        ),
                    ));
                }
                resize.resize_center_crop(&img, s, out);
            }
        }
        Ok(rec.label)
    }

    /// Checks every byte: each shard's whole-file CRC-32C against the manifest, every record's CRC,
    /// and the other files' checksums. Returns the number of records checked.
    pub fn verify(&self) -> Result<u64> {
        if let Some(h5) = &self.h5 {
            return h5.verify();
        }
        for (shard, info) in self.shards.iter().zip(&self.manifest.shards) {
            if crc32c::crc32c(&shard.map) != info.crc32c {
                return Err(Error::format(&shard.path, "file checksum does not match the manifest: the shard is corrupt — rebuild the dataset"));
            }
        }
        for f in &self.manifest.files {
            let p = self.dir.join(&f.file);
            let bytes = fs::read(&p).at(&p)?;
            if bytes.len() as u64 != f.bytes || crc32c::crc32c(&bytes) != f.crc32c {
                return Err(Error::format(&p, "checksum does not match the manifest — rebuild the dataset (or --stats-only for mean_image.npy)"));
            }
        }
        for shard in &self.shards {
            for e in &shard.entries {
                let bytes = &shard.map[e.offset as usize..(e.offset + e.len) as usize];
                if crc32c::crc32c(bytes) != e.crc {
                    return Err(Error::format(
                        &shard.path,
                        format!("record {} fails its checksum: the shard is corrupt — rebuild the dataset", e.global_index),
                    ));
                }
            }
        }
        Ok(self.len() as u64)
    }
}

fn open_shard(path: &Path, m: &Manifest, first: u64, count: u64, bytes: u64) -> Result<Shard> {
    let file = fs::File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    if len != bytes {
        return Err(Error::format(
            path,
            format!("{len} bytes, the manifest says {bytes}: truncated or replaced — rebuild the dataset"),
        ));
    }
    // SAFETY: the map is read-only. A file truncated by another process while mapped would fault on
    // access (SIGBUS); datasets are immutable once built, and sizes were checked just above.
    let map = unsafe { Mmap::map(&file) }.at(path)?;
    let header = ShardHeader::decode(&map, path)?;
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
    let table_end = HEADER_LEN as u64 + count * ENTRY_LEN as u64;
    if table_end > header.data_offset || header.data_offset > len {
        return Err(bad("record table overlaps the data region".into()));
    }
    let table = &map[HEADER_LEN..table_end as usize];
    if crc32c::crc32c(table) != header.table_crc {
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
        map,
        verified: (0..entries.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect(),
        entries,
    })
}
