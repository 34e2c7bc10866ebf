//! Writing a dataset directory atomically.
//!
//! A build writes into a visible sibling directory `OUT.partial-PID`. Only when every shard, the
//! statistics and the reports are written and fsynced is `manifest.json` written (last), and the
//! directory renamed to `OUT` (a previous dataset at `OUT` is moved aside first and deleted after).
//! A build killed at any point therefore leaves either the previous complete dataset or nothing at
//! `OUT`, and at worst a `*.partial-PID` directory with no manifest, which never opens as a dataset
//! and which the next build to the same `OUT` removes.

use std::fs;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::{
    align_up, Entry, ShardHeader, DATA_ALIGN, ENTRY_LEN, HEADER_LEN, RECORD_ALIGN,
};
use super::manifest::{
    encode_npy_f32, file_info, Manifest, ShardInfo, StatsInfo, FORMAT_NAME, FORMAT_VERSION,
    INDEX_FILE, MANIFEST_FILE, MEAN_IMAGE_FILE, REJECTS_FILE,
};
use crate::atomic_file::{start_writeback, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::part::{encode_npy_u64, PartInfo, PART_FILE, PIXEL_SUM_FILE};
use crate::prep::RejectReason;
use crate::sink::DatasetSink;
use crate::source::{BuildInfo, DatasetInfo, Mode};
use crate::stats::Stats;

/// Writes one shard file: records are appended to the data region; the header and record table,
/// which precede it, are written on [`ShardWriter::finish`].
pub struct ShardWriter {
    path: PathBuf,
    file: BufWriter<fs::File>,
    mode: Mode,
    size: u32,
    capacity: u64,
    data_offset: u64,
    /// Next write position.
    pos: u64,
    /// CRC-32C of the data region written so far (padding included).
    data_crc: u32,
    /// The data below this offset has been handed to the disk ([`start_writeback`]).
    written_back: u64,
    entries: Vec<Entry>,
}

/// Bytes that may wait in the page cache before the shard writer starts their writeback: a shard
/// is hundreds of MB, and syncing it whole when it closes would leave the decoders idle.
const WRITEBACK_CHUNK: u64 = 8 << 20;

impl ShardWriter {
    /// Creates `path` for at most `capacity` records.
    pub fn create(path: &Path, mode: Mode, size: u32, capacity: u64) -> Result<Self> {
        let data_offset = align_up(HEADER_LEN as u64 + capacity * ENTRY_LEN as u64, DATA_ALIGN);
        let mut file = fs::File::create(path).at(path)?;
        file.seek(SeekFrom::Start(data_offset)).at(path)?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            mode,
            size,
            capacity,
            data_offset,
            pos: data_offset,
            data_crc: 0,
            written_back: data_offset,
            entries: Vec::new(),
        })
    }

    /// Records written so far.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// True when the shard holds `capacity` records.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// Appends one record.
    pub fn push(&mut self, label: u32, global_index: u64, bytes: &[u8]) -> Result<()> {
        debug_assert!(!self.is_full());
        if self.mode == Mode::Raw {
            debug_assert_eq!(bytes.len(), self.size as usize * self.size as usize * 3);
            let aligned = align_up(self.pos, RECORD_ALIGN);
            let padding = [0u8; RECORD_ALIGN as usize];
            self.write_data(&padding[..(aligned - self.pos) as usize])?;
        }
        self.entries.push(Entry {
            offset: self.pos,
            len: bytes.len() as u64,
            label,
            crc: crc32c::crc32c(bytes),
            global_index,
        });
        self.write_data(bytes)
    }

    /// Appends `bytes` and starts the writeback of every [`WRITEBACK_CHUNK`] that reached the
    /// kernel. (The data CRC is extended over the bytes again rather than combined with the
    /// record's: `crc32c_combine` costs more than a second pass over a 196 KB record.)
    fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).at(&self.path)?;
        self.data_crc = crc32c::crc32c_append(self.data_crc, bytes);
        self.pos += bytes.len() as u64;
        let in_kernel = self.pos - self.file.buffer().len() as u64;
        if in_kernel - self.written_back >= WRITEBACK_CHUNK {
            let len = in_kernel - self.written_back;
            start_writeback(self.file.get_ref(), self.written_back, len);
            self.written_back = in_kernel;
        }
        Ok(())
    }

    /// Writes the header and table, fsyncs, and returns the file's length and CRC-32C.
    pub fn finish(mut self) -> Result<(u64, u32)> {
        let mut table = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            table.extend_from_slice(&e.encode());
        }
        let header = ShardHeader {
            mode: self.mode,
            count: self.len(),
            size: self.size,
            data_offset: self.data_offset,
            file_len: self.pos,
            table_crc: crc32c::crc32c(&table),
        };
        let mut prefix = header.encode().to_vec();
        prefix.extend_from_slice(&table);
        prefix.resize(self.data_offset as usize, 0);
        let path = self.path.clone();
        self.file.seek(SeekFrom::Start(0)).at(&path)?;
        self.file.write_all(&prefix).at(&path)?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().at(&path)?;
        let data_len = (self.pos - self.data_offset) as usize;
        let crc = crc32c::crc32c_combine(crc32c::crc32c(&prefix), self.data_crc, data_len);
        Ok((self.pos, crc))
    }
}

/// Escapes a path for a TSV cell: `\\`, `\t`, `\n`, `\r` as backslash escapes, bytes that are not
/// UTF-8 as `\xNN`.
pub fn tsv_path(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn tsv_text(s: &str) -> String {
    tsv_path(Path::new(s))
}

/// Checks that `out` may be (re)built: it must not exist, be an empty directory, or be an alexpipe
/// dataset (which the build replaces once the new one is complete).
pub fn check_output_dir(out: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(out, e)),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: exists and is not a directory; choose another output path",
            out.display()
        )));
    }
    if fs::read_dir(out).at(out)?.next().is_none() {
        return Ok(());
    }
    let is_dataset = fs::read(out.join(MANIFEST_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(FORMAT_NAME));
    if is_dataset {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{}: exists and is not an alexpipe dataset (no alexpipe manifest.json); choose a new output path or remove it",
            out.display()
        )))
    }
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "dataset".into());
    name.push(suffix);
    out.with_file_name(name)
}

/// Removes `OUT.partial-PID` / `OUT.old-PID` directories left by builds whose process is gone.
fn remove_stale_siblings(out: &Path) {
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = name.to_string_lossy().into_owned();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest
            .strip_prefix(".partial-")
            .or_else(|| rest.strip_prefix(".old-"));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = remove_dataset_dir(&entry.path());
            }
        }
    }
}

/// Deletes a dataset directory manifest first, so that a deletion cut short (a kill) leaves a
/// directory that says it is incomplete rather than a dataset with missing shards.
fn remove_dataset_dir(dir: &Path) -> std::io::Result<()> {
    match fs::remove_file(dir.join(MANIFEST_FILE)) {
        Ok(()) => sync_dir(dir).map_err(|e| std::io::Error::other(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::remove_dir_all(dir)
}

/// Builds a dataset directory record by record; see the module docs for the atomicity guarantee.
pub struct DatasetWriter {
    out: PathBuf,
    partial: PathBuf,
    mode: Mode,
    size: u32,
    shard_size: u64,
    classes: Vec<String>,
    class_counts: Vec<u64>,
    shards: Vec<ShardInfo>,
    current: Option<ShardWriter>,
    index: BufWriter<fs::File>,
    rejects: BufWriter<fs::File>,
    records: u64,
    rejected: u64,
    /// Files beside the standard ones (a part's sums), listed in the manifest's `files`.
    extra_files: Vec<String>,
    committed: bool,
}

/// How [`DatasetWriter::adopt_shard`] brought a shard file in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// Hard-linked: the file was already byte for byte what the dataset needs.
    Linked,
    /// Copied whole (in the kernel, `copy_file_range`), its header and record table rewritten
    /// for the records' new dataset indices; the records themselves untouched.
    Copied,
}

impl DatasetWriter {
    /// Starts a build of `out` (checked with `check_output_dir`: an existing `out` must be a dataset).
    pub fn create(
        out: &Path,
        mode: Mode,
        size: u32,
        shard_size: u64,
        classes: Vec<String>,
    ) -> Result<Self> {
        check_output_dir(out)?;
        remove_stale_siblings(out);
        let partial = sibling(out, &format!(".partial-{}", std::process::id()));
        if partial.exists() {
            fs::remove_dir_all(&partial).at(&partial)?;
        }
        fs::create_dir_all(&partial).at(&partial)?;
        let open = |name: &str, header: &str| -> Result<BufWriter<fs::File>> {
            let p = partial.join(name);
            let mut w = BufWriter::new(fs::File::create(&p).at(&p)?);
            w.write_all(header.as_bytes()).at(&p)?;
            Ok(w)
        };
        let index = open(INDEX_FILE, "record\tlabel\tclass\tshard\tpath\n")?;
        let rejects = open(REJECTS_FILE, "path\treason\tdetail\n")?;
        Ok(DatasetWriter {
            out: out.to_path_buf(),
            partial,
            mode,
            size,
            shard_size: shard_size.max(1),
            class_counts: vec![0; classes.len()],
            classes,
            shards: Vec::new(),
            current: None,
            index,
            rejects,
            records: 0,
            rejected: 0,
            extra_files: Vec::new(),
            committed: false,
        })
    }

    /// Appends a record for the input `rel` and returns its dataset index.
    pub fn push(&mut self, label: u32, rel: &Path, bytes: &[u8]) -> Result<u64> {
        if self.current.is_none() {
            let file = format!("shard-{:05}.bin", self.shards.len());
            let path = self.partial.join(&file);
            self.current = Some(ShardWriter::create(
                &path,
                self.mode,
                self.size,
                self.shard_size,
            )?);
            self.shards.push(ShardInfo {
                file,
                first_record: self.records,
                num_records: 0,
                bytes: 0,
                crc32c: 0,
            });
        }
        let index = self.records;
        if let Some(w) = self.current.as_mut() {
            w.push(label, index, bytes)?;
        }
        self.note_record(label, rel)?;
        if self.current.as_ref().is_some_and(|w| w.is_full()) {
            self.close_shard()?;
        }
        Ok(index)
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Lists the record just stored in the last shard in `index.tsv` and the class counts.
    fn note_record(&mut self, label: u32, rel: &Path) -> Result<()> {
        let index = self.records;
        let shard = self
            .shards
            .last()
            .map(|s| s.file.clone())
            .unwrap_or_default();
        let class = self
            .classes
            .get(label as usize)
            .map(|c| tsv_text(c))
            .unwrap_or_default();
        writeln!(
            self.index,
            "{index}\t{label}\t{class}\t{shard}\t{}",
            tsv_path(rel)
        )
        .at(self.partial.join(INDEX_FILE))?;
        if let Some(c) = self.class_counts.get_mut(label as usize) {
            *c += 1;
        }
        self.records += 1;
        Ok(())
    }

    /// Takes the whole shard file `src` (described by `info` in its own dataset, whose records
    /// are `records`: label and input name each) as the next shard, when the dataset is at a shard
    /// boundary: hard-linked where it is already right (its records keep their indices) and the
    /// filesystem allows, else copied with its header and table rewritten for the new indices.
    /// The records are never decoded or re-encoded. The caller checks that `src` holds a whole
    /// shard of this dataset (`shard_size` records, or the dataset's last).
    pub fn adopt_shard(
        &mut self,
        src: &Path,
        info: &ShardInfo,
        records: &[(u32, PathBuf)],
    ) -> Result<Adopted> {
        if self.current.is_some()
            || !self.records.is_multiple_of(self.shard_size)
            || info.num_records != records.len() as u64
        {
            return Err(Error::Internal(format!(
                "{}: a shard taken whole off a shard boundary",
                src.display()
            )));
        }
        let file = format!("shard-{:05}.bin", self.shards.len());
        let dst = self.partial.join(&file);
        let (adopted, crc) =
            if info.first_record == self.records && fs::hard_link(src, &dst).is_ok() {
                (Adopted::Linked, info.crc32c)
            } else {
                (
                    Adopted::Copied,
                    copy_reindexed(src, &dst, info, self.records)?,
                )
            };
        self.shards.push(ShardInfo {
            file,
            first_record: self.records,
            num_records: info.num_records,
            bytes: info.bytes,
            crc32c: crc,
        });
        for (label, rel) in records {
            self.note_record(*label, rel)?;
        }
        Ok(adopted)
    }

    /// Writes `bytes` as the file `name` of the dataset, listed in the manifest's `files` (a
    /// part's statistic sums).
    pub fn add_file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        crate::atomic_file::write(&self.partial.join(name), bytes)?;
        self.extra_files.push(name.into());
        Ok(())
    }

    /// Lists `rel` in `rejects.tsv`.
    pub fn reject(&mut self, rel: &Path, reason: &RejectReason) -> Result<()> {
        writeln!(
            self.rejects,
            "{}\t{}\t{}",
            tsv_path(rel),
            reason.kind(),
            tsv_text(&reason.detail())
        )
        .at(self.partial.join(REJECTS_FILE))?;
        self.rejected += 1;
        Ok(())
    }

    /// Replaces the text of `rejects.tsv` with `text` and the rejected count with `rejected`: a
    /// conversion back from HDF5 restores the dataset's own report byte for byte.
    pub fn restore_rejects(&mut self, text: &[u8], rejected: u64) -> Result<()> {
        let p = self.partial.join(REJECTS_FILE);
        let mut w = BufWriter::new(fs::File::create(&p).at(&p)?);
        w.write_all(text).at(&p)?;
        self.rejects = w;
        self.rejected = rejected;
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let count = w.len();
            let (bytes, crc) = w.finish()?;
            if let Some(info) = self.shards.last_mut() {
                info.num_records = count;
                info.bytes = bytes;
                info.crc32c = crc;
            }
        }
        Ok(())
    }

    /// Finishes every file, writes the statistics and the manifest (last), and moves the directory
    /// into place at `OUT`.
    pub fn commit(mut self, stats: &Stats, build: BuildInfo) -> Result<Manifest> {
        self.close_shard()?;
        for (w, name) in [
            (&mut self.index, INDEX_FILE),
            (&mut self.rejects, REJECTS_FILE),
        ] {
            let p = self.partial.join(name);
            w.flush().at(&p)?;
            w.get_ref().sync_all().at(&p)?;
        }
        let s = self.size as usize;
        let npy = encode_npy_f32(&[s, s, 3], &stats.mean_image);
        crate::atomic_file::write(&self.partial.join(MEAN_IMAGE_FILE), &npy)?;
        let files = [INDEX_FILE, REJECTS_FILE, MEAN_IMAGE_FILE]
            .iter()
            .copied()
            .chain(self.extra_files.iter().map(String::as_str))
            .map(|f| file_info(&self.partial, f))
            .collect::<Result<Vec<_>>>()?;
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            mode: self.mode,
            size: self.size,
            pixel_layout: "HWC RGB u8".into(),
            num_records: self.records,
            classes: self.classes.clone(),
            class_counts: self.class_counts.clone(),
            rejected: self.rejected,
            shards: self.shards.clone(),
            files,
            stats: StatsInfo::from_stats(stats),
            build,
        };
        manifest.write_atomic(&self.partial)?;
        let parent = self
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Replacing a dataset: swap the two directories in one atomic step where the filesystem
        // can, so that OUT is always a complete dataset; then delete the old one (now at the
        // partial path, where a kill would leave it, complete, for the next build to remove).
        if self.out.exists() && exchange(&self.partial, &self.out).is_ok() {
            self.committed = true;
            sync_dir(parent)?;
            remove_dataset_dir(&self.partial).at(&self.partial)?;
            return Ok(manifest);
        }
        // Otherwise: OUT -> OUT.old-PID, partial -> OUT, then delete the old one.
        let old = sibling(&self.out, &format!(".old-{}", std::process::id()));
        let had_old = self.out.exists();
        if had_old {
            fs::rename(&self.out, &old).at(&self.out)?;
        }
        fs::rename(&self.partial, &self.out).at(&self.out)?;
        self.committed = true;
        sync_dir(parent)?;
        if had_old {
            remove_dataset_dir(&old).at(&old)?;
        }
        Ok(manifest)
    }
}

/// Copies the shard file `src` (`info` in its dataset) to `dst` with its records renumbered from
/// `first_record`: the header and table are rewritten, the data region is copied as it is.
/// Returns the new file's CRC-32C, derived from the source's listed CRC (not from the bytes read),
/// so a source damaged since it was written still fails `verify` after the copy.
fn copy_reindexed(src: &Path, dst: &Path, info: &ShardInfo, first_record: u64) -> Result<u32> {
    use std::os::unix::fs::FileExt;
    fs::copy(src, dst).at(dst)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dst)
        .at(dst)?;
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, 0).at(dst)?;
    let mut header = ShardHeader::decode(&head, src)?;
    let mut prefix = vec![0u8; header.data_offset as usize];
    file.read_exact_at(&mut prefix, 0).at(dst)?;
    let table_end = HEADER_LEN + header.count as usize * ENTRY_LEN;
    let table = prefix.get(HEADER_LEN..table_end).ok_or_else(|| {
        Error::format(
            src,
            "record table runs past the data offset; rebuild the part",
        )
    })?;
    if crc32c::crc32c(table) != header.table_crc {
        return Err(Error::corrupt(
            src,
            "record table fails its checksum; rebuild the part",
        ));
    }
    let mut new_table = Vec::with_capacity(table.len());
    for (i, chunk) in table.chunks_exact(ENTRY_LEN).enumerate() {
        let mut entry = Entry::decode(chunk);
        entry.global_index = first_record + i as u64;
        new_table.extend_from_slice(&entry.encode());
    }
    header.table_crc = crc32c::crc32c(&new_table);
    let mut new_prefix = header.encode().to_vec();
    new_prefix.extend_from_slice(&new_table);
    new_prefix.resize(prefix.len(), 0);
    file.write_all_at(&new_prefix, 0).at(dst)?;
    file.sync_all().at(dst)?;
    // CRC-32C is linear: for prefixes P, P' of one length and data D,
    // crc(P'‖D) = crc(P‖D) ⊕ shift(crc(P) ⊕ crc(P'), |D|), the shift being crc32c_combine's.
    let data_len = (info.bytes - header.data_offset) as usize;
    let delta = crc32c::crc32c(&prefix) ^ crc32c::crc32c(&new_prefix);
    Ok(info.crc32c ^ crc32c::crc32c_combine(delta, 0, data_len))
}

/// Atomically exchanges two directories (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

impl DatasetSink for DatasetWriter {
    fn push(&mut self, label: u32, rel: &Path, bytes: &[u8]) -> Result<u64> {
        DatasetWriter::push(self, label, rel, bytes)
    }

    fn add_classes(&mut self, names: &[String]) -> Result<()> {
        self.classes.extend_from_slice(names);
        self.class_counts.resize(self.classes.len(), 0);
        Ok(())
    }

    fn reject(&mut self, rel: &Path, reason: &RejectReason) -> Result<()> {
        DatasetWriter::reject(self, rel, reason)
    }

    fn commit(self: Box<Self>, stats: &Stats, build: BuildInfo) -> Result<DatasetInfo> {
        Ok(DatasetWriter::commit(*self, stats, build)?.dataset_info(true))
    }

    fn commit_part(
        mut self: Box<Self>,
        stats: &Stats,
        build: BuildInfo,
        part: &PartInfo,
        pixel_sum: &[u64],
    ) -> Result<DatasetInfo> {
        let s = self.size as usize;
        self.add_file(PIXEL_SUM_FILE, &encode_npy_u64(&[s, s, 3], pixel_sum))?;
        let mut json = serde_json::to_vec_pretty(part)
            .map_err(|e| Error::Internal(format!("cannot write {PART_FILE}: {e}")))?;
        json.push(b'\n');
        self.add_file(PART_FILE, &json)?;
        Ok(DatasetWriter::commit(*self, stats, build)?.dataset_info(true))
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_escapes_control_characters_and_bad_utf8() {
        assert_eq!(tsv_path(Path::new("a\tb\\c\nd")), "a\\tb\\\\c\\nd");
        assert_eq!(tsv_path(Path::new("café.jpg")), "café.jpg");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let p = Path::new(std::ffi::OsStr::from_bytes(b"x\xffy.jpg"));
            assert_eq!(tsv_path(p), "x\\xffy.jpg");
        }
    }
}
