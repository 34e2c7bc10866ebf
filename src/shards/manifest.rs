//! `manifest.json`: the dataset's table of contents, written last (its presence marks a complete
//! dataset), plus the `.npy` files that hold array-valued statistics.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::source::{BuildInfo, DatasetInfo, Mode};
use crate::stats::{Stats, StatsSummary};

/// Value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "alexpipe-dataset";
/// Version of the dataset layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// Largest record side a dataset may have (`build-shards --size` accepts 1..=8192).
pub const MAX_SIZE: u32 = 8192;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The per-pixel mean image's file name.
pub const MEAN_IMAGE_FILE: &str = "mean_image.npy";
/// The per-record provenance file's name.
pub const INDEX_FILE: &str = "index.tsv";
/// The rejected-inputs report's file name.
pub const REJECTS_FILE: &str = "rejects.tsv";
/// The manifest's own checksum: the last key of its object, 8 lowercase hex digits.
pub const CHECKSUM_KEY: &str = "manifest_crc32c";

/// Where the 8 hex digits of the manifest's own checksum are in its bytes: after the last
/// `"manifest_crc32c"`, optional whitespace, `:`, optional whitespace and `"`.
fn checksum_span(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let key = format!("\"{CHECKSUM_KEY}\"");
    let key = key.as_bytes();
    let mut i = bytes.windows(key.len()).rposition(|w| w == key)? + key.len();
    let skip_ws = |i: &mut usize| {
        while bytes.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    (bytes.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    skip_ws(&mut i);
    (bytes.get(i) == Some(&b'"')).then_some(())?;
    let digits = i + 1..i + 9;
    let hex = bytes.get(digits.clone())?;
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (hex.iter().all(lower_hex) && bytes.get(i + 9) == Some(&b'"')).then_some(digits)
}

/// CRC-32C of `bytes` with the checksum's digits read as `00000000`.
fn sealed_crc(bytes: &[u8], digits: std::ops::Range<usize>) -> u32 {
    let crc = crc32c::crc32c(&bytes[..digits.start]);
    let crc = crc32c::crc32c_append(crc, b"00000000");
    crc32c::crc32c_append(crc, &bytes[digits.end..])
}

/// The bytes of `manifest.json` for `value` (a JSON object): pretty-printed, with its own checksum
/// as the last key (any earlier one is dropped), so a damaged manifest is refused instead of
/// misread. Tests that edit a manifest on purpose seal it again with this.
pub fn seal_manifest(value: &impl Serialize) -> Result<Vec<u8>> {
    let bad = |e: String| Error::Usage(format!("cannot write a manifest: {e}"));
    let mut v = serde_json::to_value(value).map_err(|e| bad(e.to_string()))?;
    let object = v
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    object.remove(CHECKSUM_KEY);
    object.insert(CHECKSUM_KEY.into(), serde_json::json!("00000000"));
    let mut bytes = serde_json::to_vec_pretty(&v).map_err(|e| bad(e.to_string()))?;
    bytes.push(b'\n');
    let digits = checksum_span(&bytes).ok_or_else(|| bad("checksum key not last".into()))?;
    let crc = format!("{:08x}", sealed_crc(&bytes, digits.clone()));
    bytes[digits].copy_from_slice(crc.as_bytes());
    Ok(bytes)
}

/// Checks the manifest's own checksum (see [`seal_manifest`]).
fn check_seal(bytes: &[u8], path: &Path) -> Result<()> {
    let Some(digits) = checksum_span(bytes) else {
        return Err(Error::format(
            path,
            format!("has no checksum of its own (\"{CHECKSUM_KEY}\"): damaged, or written by an alexpipe older than 2026-11-28 — rebuild the dataset"),
        ));
    };
    let stored = std::str::from_utf8(&bytes[digits.clone()])
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    if stored != Some(sealed_crc(bytes, digits)) {
        return Err(Error::format(
            path,
            "fails its own checksum: the manifest is damaged (or was edited by hand) — rebuild the dataset",
        ));
    }
    Ok(())
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Record layout of every shard.
    pub mode: Mode,
    /// Image side length (records are `size`×`size` after §2's resize and crop).
    pub size: u32,
    /// Pixel layout of decoded records: always `"HWC RGB u8"`.
    pub pixel_layout: String,
    /// Number of records in the dataset.
    pub num_records: u64,
    /// Class names; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Records per class.
    pub class_counts: Vec<u64>,
    /// Inputs that did not become records (listed in `rejects.tsv`).
    pub rejected: u64,
    /// The shard files, in record order.
    pub shards: Vec<ShardInfo>,
    /// Other files of the dataset with their checksums.
    pub files: Vec<FileInfo>,
    /// Training-set statistics of the records.
    pub stats: StatsInfo,
    /// How the dataset was built.
    pub build: BuildInfo,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the dataset directory.
    pub file: String,
    /// Dataset index of its first record.
    pub first_record: u64,
    /// Number of records in it.
    pub num_records: u64,
    /// File length in bytes.
    pub bytes: u64,
    /// CRC-32C of the whole file.
    pub crc32c: u32,
}

/// A non-shard file of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// File name inside the dataset directory.
    pub file: String,
    /// File length in bytes.
    pub bytes: u64,
    /// CRC-32C of the whole file.
    pub crc32c: u32,
}

/// Scalar statistics; the mean image lives in [`MEAN_IMAGE_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsInfo {
    /// Units of every value below.
    pub units: String,
    /// File holding the per-pixel mean image, `size`×`size`×3 float32 `.npy`, HWC RGB.
    pub mean_image: String,
    /// The values.
    #[serde(flatten)]
    pub summary: StatsSummary,
}

/// Units string stored in [`StatsInfo::units`].
pub const STATS_UNITS: &str =
    "u8 levels 0..255; means and stds in levels, covariance and eigvals in levels^2 (population, 1/N)";

impl StatsInfo {
    /// The scalar part of `stats`.
    pub fn from_stats(stats: &Stats) -> Self {
        StatsInfo {
            units: STATS_UNITS.into(),
            mean_image: MEAN_IMAGE_FILE.into(),
            summary: stats.summary(),
        }
    }

    /// Joins the scalars with the mean image back into [`Stats`].
    pub fn to_stats(&self, size: u32, mean_image: Vec<f32>) -> Stats {
        Stats::from_summary(&self.summary, size, mean_image)
    }
}

impl Manifest {
    /// What the dataset holds, format-neutral; the statistics' summary when `with_stats`.
    pub fn dataset_info(&self, with_stats: bool) -> DatasetInfo {
        DatasetInfo {
            format: "shards".into(),
            mode: self.mode,
            size: self.size,
            num_records: self.num_records,
            classes: self.classes.clone(),
            class_counts: self.class_counts.clone(),
            rejected: self.rejected,
            stats: with_stats.then(|| self.stats.summary.clone()),
            build: self.build.clone(),
        }
    }

    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::format(
                    dir,
                    "no manifest.json: an incomplete dataset (its build was interrupted) or not an alexpipe dataset — run build-shards again",
                )
            } else {
                Error::io(&path, e)
            }
        })?;
        Manifest::parse(&text, &path)
    }

    /// Checks and parses the bytes of a `manifest.json` (read from `path`, or fetched from the
    /// URL `path` names), exactly as [`Manifest::read`] does.
    pub fn parse(text: &[u8], path: &Path) -> Result<Manifest> {
        check_seal(text, path)?;
        let m: Manifest = serde_json::from_slice(text).map_err(|e| {
            Error::format(path, format!("invalid manifest ({e}); rebuild the dataset"))
        })?;
        if m.format != FORMAT_NAME {
            return Err(Error::format(
                path,
                format!("format is {:?}, not {FORMAT_NAME:?}", m.format),
            ));
        }
        if m.format_version != FORMAT_VERSION {
            return Err(Error::format(
                path,
                format!(
                    "dataset format version {}; this alexpipe reads version {FORMAT_VERSION} — rebuild the dataset",
                    m.format_version
                ),
            ));
        }
        if m.size == 0 || m.size > MAX_SIZE {
            return Err(Error::format(
                path,
                format!(
                    "size {} is outside 1..={MAX_SIZE}; the manifest is damaged — rebuild the dataset",
                    m.size
                ),
            ));
        }
        // Every file a dataset names lives in its directory: a name with a path separator or `..`
        // would make a reader open something outside it.
        let names = m
            .shards
            .iter()
            .map(|s| &s.file)
            .chain(m.files.iter().map(|f| &f.file));
        for name in names.chain(std::iter::once(&m.stats.mean_image)) {
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                return Err(Error::format(
                    path,
                    format!("names the file {name:?}, which is not a plain file name in the dataset directory; the manifest is damaged or hostile — rebuild the dataset"),
                ));
            }
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn write_atomic(&self, dir: &Path) -> Result<()> {
        crate::atomic_file::write(&dir.join(MANIFEST_FILE), &seal_manifest(self)?)
    }
}

/// Size and CRC-32C of a file.
pub fn file_info(dir: &Path, name: &str) -> Result<FileInfo> {
    let path = dir.join(name);
    let bytes = fs::read(&path).at(&path)?;
    Ok(FileInfo {
        file: name.into(),
        bytes: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
    })
}

/// Encodes a float32 array as a NumPy `.npy` (version 1.0, little-endian, C order).
pub fn encode_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a `.npy` written by [`encode_npy_f32`] (float32, C order), checking the shape.
pub fn decode_npy_f32(bytes: &[u8], shape: &[usize], path: &Path) -> Result<Vec<f32>> {
    let bad = |why: &str| {
        Error::format(
            path,
            format!(
                "{why}; expected a float32 .npy of shape {shape:?} — run build-shards --stats-only"
            ),
        )
    };
    if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
        return Err(bad("not a version 1.0 .npy file"));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = bytes
        .get(10..10 + hlen)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let expected = encode_npy_f32(shape, &[]);
    if header.as_bytes() != &expected[10..] {
        return Err(bad(&format!("header {:?} does not match", header.trim())));
    }
    let data = &bytes[10 + hlen..];
    let n: usize = shape.iter().product();
    if data.len() != n * 4 {
        return Err(bad(&format!(
            "{} data bytes instead of {}",
            data.len(),
            n * 4
        )));
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_alignment() -> Result<()> {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        let bytes = encode_npy_f32(&[2, 4, 3], &data);
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(
            decode_npy_f32(&bytes, &[2, 4, 3], Path::new("m.npy"))?,
            data
        );
        assert!(decode_npy_f32(&bytes, &[4, 2, 3], Path::new("m.npy")).is_err());
        assert!(decode_npy_f32(&bytes[..bytes.len() - 1], &[2, 4, 3], Path::new("m.npy")).is_err());
        Ok(())
    }
}
