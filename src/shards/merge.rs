//! `alexpipe merge PART... OUT`: the parts of a build spread over machines (`--part K/N`, see
//! [`crate::part`]) joined into the dataset a build in one go makes, byte for byte.
//!
//! Records keep their order (part K's inputs follow part K−1's), so `index.tsv` and `rejects.tsv`
//! are the parts' in part order, renumbered; the statistics are the parts' exact integer sums
//! added, then finished once, so the mean image and the eigenbasis (§2, §4.1) are bit-identical
//! to a one-go build's. Class names that come from the labels run up to the largest label of any
//! part, as the one-go build's do. Shards are never decoded, and are laid out as the one-go build
//! lays them out, `--shard-size` records each from record 0: a part's shard that is a whole shard
//! of the merged dataset (the merge is at a shard boundary and the shard is full, or the last) is
//! hard-linked (its records keep their indices: part 1's, or any part's while the parts before it
//! hold whole shards) or copied in the kernel with its record table renumbered; every other
//! record is re-packed into the merged dataset's shards, its stored bytes copied as they are.
//! Parts of an image folder or a list file start on shard boundaries unless an earlier part had
//! rejects; parts of container files (tars, parquet) start wherever the files' samples end, so
//! most of their records are re-packed. The output is committed like a build's
//! (`OUT.partial-PID`, manifest last, atomic swap).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::manifest::{Manifest, INDEX_FILE, REJECTS_FILE};
use super::reader::ShardSource;
use super::writer::{Adopted, DatasetWriter};
use crate::error::{Error, IoContext, Result};
use crate::part::{CutBy, PartInfo, PartSlice, PART_FILE, PIXEL_SUM_FILE};
use crate::source::{BuildInfo, RecordSource};
use crate::stats::{ExactSums, StatsAccumulator};

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// The dataset written.
    pub out: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Parts merged.
    pub parts: usize,
    /// Shards hard-linked from a part.
    pub linked: usize,
    /// Shards copied whole from a part, their record tables renumbered.
    pub copied: usize,
    /// Records re-packed one by one into new shards (bytes copied, never re-encoded).
    pub repacked: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
}

/// One part, read and checked.
struct Part {
    dir: PathBuf,
    manifest: Manifest,
    info: PartInfo,
    sums: ExactSums,
}

/// The bytes of the file `name` of the dataset `dir`, checked against its manifest entry.
fn read_listed(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    let Some(listed) = manifest.files.iter().find(|f| f.file == name) else {
        return Err(Error::Usage(format!(
            "{}: not a part of a build (its manifest lists no {name}): build the parts with `build-shards INPUT DIR --part K/N`",
            dir.display()
        )));
    };
    let path = dir.join(name);
    let bytes = fs::read(&path).at(&path)?;
    if bytes.len() as u64 != listed.bytes || crc32c::crc32c(&bytes) != listed.crc32c {
        return Err(Error::corrupt(
            &path,
            "does not match the size and checksum in manifest.json: the part is damaged — build it again",
        ));
    }
    Ok(bytes)
}

fn read_part(dir: &Path) -> Result<Part> {
    let manifest = Manifest::read(dir)?;
    let part_path = dir.join(PART_FILE);
    let info: PartInfo =
        serde_json::from_slice(&read_listed(dir, &manifest, PART_FILE)?).map_err(|e| {
            Error::format(
                &part_path,
                format!("invalid part description ({e}); build the part again"),
            )
        })?;
    let sums = info.sums(
        &read_listed(dir, &manifest, PIXEL_SUM_FILE)?,
        &dir.join(PIXEL_SUM_FILE),
    )?;
    let slice = &info.slice;
    let expected = slice
        .cut_by
        .range(slice.part, slice.total, manifest.build.shard_size);
    if info.mode != manifest.mode
        || info.size != manifest.size
        || sums.images != manifest.num_records
        || expected != slice.range
    {
        return Err(Error::format(
            &part_path,
            "disagrees with the part's manifest (mode, size, record count or input range); build the part again",
        ));
    }
    Ok(Part {
        dir: dir.to_path_buf(),
        manifest,
        info,
        sums,
    })
}

/// The build options, with the time of the build left out.
fn options(build: &BuildInfo) -> BuildInfo {
    BuildInfo {
        created_unix: 0,
        ..build.clone()
    }
}

/// Why `part` cannot be merged with `first`, if it cannot: the first thing that differs.
fn difference(first: &Part, part: &Part) -> Option<String> {
    let (a, b) = (&first.manifest.build, &part.manifest.build);
    if a.tool != b.tool {
        return Some(format!(
            "it was built by {}, {} by {}",
            b.tool,
            first.dir.display(),
            a.tool
        ));
    }
    if a.input != b.input || a.input_kind != b.input_kind {
        return Some(format!(
            "its input is {} ({}), {}'s is {} ({})",
            b.input,
            b.input_kind,
            first.dir.display(),
            a.input,
            a.input_kind
        ));
    }
    let (x, y) = (&first.info.slice, &part.info.slice);
    if (x.cut_by, x.total, &x.inputs_digest, x.classes_from_labels)
        != (y.cut_by, y.total, &y.inputs_digest, y.classes_from_labels)
    {
        let what = |s: &PartSlice| match s.cut_by {
            CutBy::Inputs => "inputs",
            CutBy::Files => "files",
        };
        return Some(format!(
            "its input lists other files ({} {}, digest {}; {} found {} {}, digest {}): every machine must see the same INPUT (the same files, of the same sizes) and the same class names",
            y.total,
            what(y),
            y.inputs_digest,
            first.dir.display(),
            x.total,
            what(x),
            x.inputs_digest
        ));
    }
    if x.part.count != y.part.count {
        return Some(format!(
            "it is a part of {}, {} a part of {}",
            y.part.count,
            first.dir.display(),
            x.part.count
        ));
    }
    // Classes named by the labels: each part names those up to its own largest label.
    let (shorter, longer) = if first.manifest.classes.len() <= part.manifest.classes.len() {
        (&first.manifest.classes, &part.manifest.classes)
    } else {
        (&part.manifest.classes, &first.manifest.classes)
    };
    let same_classes = if x.classes_from_labels {
        longer.starts_with(shorter)
    } else {
        shorter == longer
    };
    if options(a) != options(b)
        || first.manifest.mode != part.manifest.mode
        || first.manifest.size != part.manifest.size
        || !same_classes
    {
        return Some(format!(
            "it was built with other options (mode {}, size {}, {:?}) than {} (mode {}, size {}, {:?})",
            part.manifest.mode,
            part.manifest.size,
            options(b),
            first.dir.display(),
            first.manifest.mode,
            first.manifest.size,
            options(a)
        ));
    }
    None
}

/// Reverses the `index.tsv` cell escaping (`docs/FORMAT.md`); `None` for a malformed cell.
fn tsv_unescape(cell: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let b = cell.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// Each record's label and input name, from the part's `index.tsv`.
fn read_index(part: &Part) -> Result<Vec<(u32, PathBuf)>> {
    let path = part.dir.join(INDEX_FILE);
    let bytes = read_listed(&part.dir, &part.manifest, INDEX_FILE)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::format(&path, "is not UTF-8; build the part again"))?;
    let mut records = Vec::with_capacity(part.manifest.num_records as usize);
    for (n, line) in text.lines().skip(1).enumerate() {
        let cells: Vec<&str> = line.split('\t').collect();
        let parsed = match cells[..] {
            [record, label, _, _, rel] if record.parse::<usize>().ok() == Some(n) => {
                label.parse::<u32>().ok().zip(tsv_unescape(rel))
            }
            _ => None,
        };
        let record = parsed.ok_or_else(|| {
            Error::format(
                &path,
                format!("line {} is not record {n}'s `record label class shard path`; build the part again", n + 2),
            )
        })?;
        records.push(record);
    }
    if records.len() as u64 != part.manifest.num_records {
        return Err(Error::format(
            &path,
            format!(
                "lists {} records, the manifest {}; build the part again",
                records.len(),
                part.manifest.num_records
            ),
        ));
    }
    Ok(records)
}

/// Checks that `parts` are every part of one build, once each, and returns them in part order.
fn check_parts(mut parts: Vec<Part>) -> Result<Vec<Part>> {
    let first_dir = parts[0].dir.clone();
    for part in &parts[1..] {
        if let Some(why) = difference(&parts[0], part) {
            return Err(Error::Usage(format!(
                "{}: part {} is not from the same build as {}: {why}; build every part from the same INPUT with the same options and alexpipe version",
                part.dir.display(),
                part.info.slice.part,
                first_dir.display()
            )));
        }
    }
    parts.sort_by_key(|p| p.info.slice.part.index);
    for pair in parts.windows(2) {
        if pair[0].info.slice.part.index == pair[1].info.slice.part.index {
            return Err(Error::Usage(format!(
                "{} and {} are both part {}: give each part once",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].info.slice.part
            )));
        }
    }
    let count = parts[0].info.slice.part.count;
    if let Some(missing) = (1..=count).find(|&k| parts.iter().all(|p| p.info.slice.part.index != k))
    {
        return Err(Error::Usage(format!(
            "part {missing}/{count} is missing ({} of {count} parts given): build it with `build-shards {} DIR --part {missing}/{count}` and give it too",
            parts.len(),
            parts[0].manifest.build.input
        )));
    }
    Ok(parts)
}

/// Merges the parts `dirs` (every part of one build, in any order) into the dataset `out`,
/// created or replaced atomically. `progress` is called with the records merged.
pub fn merge_parts(
    dirs: &[PathBuf],
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<MergeSummary> {
    let start = Instant::now();
    if dirs.is_empty() {
        return Err(Error::Usage(
            "no parts to merge: give the part directories, then OUT".into(),
        ));
    }
    let out_real = fs::canonicalize(out).ok();
    for dir in dirs {
        if out_real.is_some() && fs::canonicalize(dir).ok() == out_real {
            return Err(Error::Usage(format!(
                "{}: OUT is one of the parts; merge into a new directory",
                out.display()
            )));
        }
    }
    let parts = check_parts(dirs.iter().map(|d| read_part(d)).collect::<Result<_>>()?)?;
    let first = &parts[0].manifest;
    let shard_size = first.build.shard_size.max(1);
    let total: u64 = parts.iter().map(|p| p.manifest.num_records).sum();
    // The classes: the same in every part, or named by the labels up to the largest of any part
    // (the parts agree on the names they share: checked above).
    let classes = parts
        .iter()
        .map(|p| &p.manifest.classes)
        .max_by_key(|c| c.len())
        .unwrap_or(&first.classes)
        .clone();
    let mut writer = DatasetWriter::create(out, first.mode, first.size, shard_size, classes)?;
    let mut acc = StatsAccumulator::new(first.size);
    let mut rejects = b"path\treason\tdetail\n".to_vec();
    let mut rejected = 0u64;
    let (mut linked, mut copied, mut repacked) = (0, 0, 0u64);
    let mut record = Vec::new();
    for part in &parts {
        acc.merge(&StatsAccumulator::from_sums(part.sums.clone()));
        let text = read_listed(&part.dir, &part.manifest, REJECTS_FILE)?;
        let body = text
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[][..], |i| &text[i + 1..]);
        rejects.extend_from_slice(body);
        rejected += part.manifest.rejected;
        let index = read_index(part)?;
        let (source, _) = ShardSource::open(&part.dir, false)?;
        for shard in &part.manifest.shards {
            let range =
                shard.first_record as usize..(shard.first_record + shard.num_records) as usize;
            let whole =
                shard.num_records == shard_size || writer.records() + shard.num_records == total;
            if writer.records().is_multiple_of(shard_size) && whole {
                match writer.adopt_shard(&part.dir.join(&shard.file), shard, &index[range])? {
                    Adopted::Linked => linked += 1,
                    Adopted::Copied => copied += 1,
                }
            } else {
                for i in range {
                    let label = source.read_record(i, &mut record)?;
                    let (listed, rel) = &index[i];
                    if label != *listed {
                        return Err(Error::format(
                            part.dir.join(INDEX_FILE),
                            format!("record {i} has label {listed} here and {label} in its shard; build the part again"),
                        ));
                    }
                    writer.push(label, rel, &record)?;
                }
                repacked += shard.num_records;
            }
            progress(shard.num_records);
        }
    }
    writer.restore_rejects(&rejects, rejected)?;
    let Some(stats) = acc.finish() else {
        return Err(Error::Usage(format!(
            "none of the inputs of {} could be used (see the parts' rejects.tsv); nothing to merge",
            first.build.input
        )));
    };
    let build = BuildInfo {
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ..first.build.clone()
    };
    let manifest = writer.commit(&stats, build)?;
    Ok(MergeSummary {
        out: out.to_path_buf(),
        manifest,
        parts: parts.len(),
        linked,
        copied,
        repacked,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::writer::tsv_path;

    #[test]
    fn unescape_reverses_the_index_escaping() {
        use std::os::unix::ffi::OsStrExt;
        let names: [&[u8]; 4] = [
            b"a\tb\\c\nd\re.jpg",
            b"caf\xc3\xa9.jpg",
            b"x\xffy.jpg",
            b"plain/dir/f.png",
        ];
        for name in names {
            let path = Path::new(std::ffi::OsStr::from_bytes(name));
            assert_eq!(tsv_unescape(&tsv_path(path)).as_deref(), Some(path));
        }
        assert_eq!(tsv_unescape("bad\\q"), None);
        assert_eq!(tsv_unescape("cut\\"), None);
        assert_eq!(tsv_unescape("hex\\xg0"), None);
    }
}
