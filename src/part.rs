//! One part of a build spread over many machines (`build-shards INPUT OUT --part K/N`): which
//! inputs part K of N takes, and what a part keeps besides its records so that
//! [`crate::shards::merge_parts`] can join the N parts into the dataset a build in one go makes.
//!
//! Every machine that lists the same input discovers the same inputs in the same order (§2's
//! training set, sorted), and part K takes one contiguous slice of them ([`CutBy`]). An image
//! folder or a list file is cut in whole multiples of `--shard-size` inputs, so that where no input
//! is rejected the parts' shards are exactly the one-go build's shards and the merge only links or
//! copies them. Container inputs (WebDataset tars, parquet and Arrow files) are cut by whole files,
//! so that a part reads only its own files; their sample counts are known only once read, so the
//! merge re-packs the records of a part that does not start on a shard boundary. A part keeps the
//! exact integer sums of its statistics ([`ExactSums`]: `pixel_sum.npy` and `part.json`), which add
//! up to the one-go sums, so the merged mean image and eigenbasis are bit-identical.

use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::prep::Source;
use crate::source::{BuildInfo, Mode};
use crate::stats::ExactSums;

/// The part's description and statistic sums, in the part's directory.
pub const PART_FILE: &str = "part.json";
/// The part's per-pixel sums, a NumPy `.npy` of `<u8` (unsigned 64-bit), shape (S, S, 3).
pub const PIXEL_SUM_FILE: &str = "pixel_sum.npy";

/// Part `index` of `count` (1-based, as written on the command line: `--part 2/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartSpec {
    /// Which part, 1..=count.
    pub index: u32,
    /// How many parts the build is cut into.
    pub count: u32,
}

impl FromStr for PartSpec {
    type Err = Error;

    /// `"K/N"` with 1 ≤ K ≤ N.
    fn from_str(s: &str) -> Result<PartSpec> {
        let bad = || {
            Error::Usage(format!(
                "--part {s:?}: give K/N, part K of N counted from 1 (e.g. --part 3/8)"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(PartSpec { index, count })
    }
}

impl std::fmt::Display for PartSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl PartSpec {
    /// The units `start..end` this part takes of `total`: the units are cut into blocks of
    /// `block` (the last one shorter) and part K gets blocks `⌊(K−1)·B/N⌋ .. ⌊K·B/N⌋` of the B
    /// blocks, so parts differ by at most one block. With fewer blocks than parts, some parts are
    /// empty.
    pub fn input_range(&self, total: u64, block: u64) -> Range<u64> {
        let block = block.max(1);
        let blocks = total.div_ceil(block) as u128;
        let n = self.count as u128;
        let end_of = |k: u128| ((k * blocks / n) as u64 * block).min(total);
        end_of(self.index as u128 - 1)..end_of(self.index as u128)
    }
}

/// What a build is cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutBy {
    /// The discovered inputs (an image folder, a list file), in blocks of `--shard-size`: every
    /// part but the last starts and ends on a shard boundary of the one-go build (when nothing
    /// before it is rejected).
    Inputs,
    /// Whole container files (WebDataset tars, parquet and Arrow files), one by one: part K
    /// takes files `⌊(K−1)·F/N⌋ .. ⌊K·F/N⌋` of the F files and reads no other.
    Files,
}

impl CutBy {
    /// The units (inputs or files) part `part` takes of `total`, with `shard_size` records a shard.
    pub fn range(self, part: PartSpec, total: u64, shard_size: u64) -> Range<u64> {
        let block = match self {
            CutBy::Inputs => shard_size,
            CutBy::Files => 1,
        };
        part.input_range(total, block)
    }
}

/// A CRC-32C of the class names (or that the labels name the classes) and then of `lines`, in
/// order: the digest [`PartSlice::inputs_digest`] holds.
fn digest(
    classes: &[String],
    classes_from_labels: bool,
    lines: impl IntoIterator<Item = Vec<u8>>,
) -> String {
    let mut crc = 0u32;
    for class in classes {
        crc = crc32c::crc32c_append(crc, class.as_bytes());
        crc = crc32c::crc32c_append(crc, b"\0");
    }
    let classes_end: &[u8] = if classes_from_labels {
        b"classes from the labels\n"
    } else {
        b"\n"
    };
    crc = crc32c::crc32c_append(crc, classes_end);
    for line in lines {
        crc = crc32c::crc32c_append(crc, &line);
    }
    format!("{crc:08x}")
}

/// The digest of listed inputs (an image folder, a list file): the class names and each input's
/// name, label and refusal, in order. Parts whose inputs differ (another folder, a file added on
/// one machine) have different digests, and the merge refuses them.
pub fn inputs_digest(classes: &[String], sources: &[Source]) -> String {
    digest(
        classes,
        false,
        sources.iter().map(|src| {
            let mut line = src.rel.as_os_str().as_encoded_bytes().to_vec();
            let label = src.label.map_or("-".to_string(), |l| l.to_string());
            let refused = src.refused.as_ref().map_or("", |r| r.kind());
            line.extend_from_slice(format!("\0{label}\0{refused}\n").as_bytes());
            line
        }),
    )
}

/// One container file of an input (a WebDataset tar, a parquet or Arrow file) as
/// [`files_digest`] tells it apart: its name as discovery names it, and its size when it is local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFile {
    /// The name in `index.tsv` (a path as the pattern expanded, a URL, a Hugging Face
    /// directory's relative name).
    pub name: String,
    /// Its size in bytes; `None` for a URL (telling two servers' files apart would mean reading
    /// every part's files).
    pub bytes: Option<u64>,
}

impl ContainerFile {
    /// The file `name`, its size read at `path` (`None`: a URL, not read).
    pub fn stat(name: &str, path: Option<&Path>) -> Result<ContainerFile> {
        let bytes = match path {
            Some(path) => Some(std::fs::metadata(path).at(path)?.len()),
            None => None,
        };
        Ok(ContainerFile {
            name: name.to_string(),
            bytes,
        })
    }
}

/// The digest of container input: the class names (or that the labels name them), `options`
/// (what picks the image and the label: `--label-key`, `--image-column`, `--label-column`), and
/// every file of the whole input, in order, by name and local size. A part reads only its own
/// files, so this is what it can know of the others: a file added, removed, renamed or of another
/// size on one machine gives another digest, and the merge refuses the parts.
pub fn files_digest(
    classes: &[String],
    classes_from_labels: bool,
    options: &str,
    files: &[ContainerFile],
) -> String {
    let head = format!("{options}\n").into_bytes();
    digest(
        classes,
        classes_from_labels,
        std::iter::once(head).chain(files.iter().map(|f| {
            let size = f.bytes.map_or("url".to_string(), |b| b.to_string());
            let mut line = f.name.as_bytes().to_vec();
            line.extend_from_slice(format!("\0{size}\n").as_bytes());
            line
        })),
    )
}

/// Where a part lies in the discovered input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSlice {
    /// Which part of how many.
    pub part: PartSpec,
    /// What the input is cut into: inputs, or container files.
    pub cut_by: CutBy,
    /// How many of them the whole INPUT has.
    pub total: u64,
    /// The ones this part takes (0-based, in discovery order): [`CutBy::range`].
    pub range: Range<u64>,
    /// [`inputs_digest`] or [`files_digest`] of the whole input.
    pub inputs_digest: String,
    /// The class names come from the labels read (`0`, `1`, … up to the largest label of a
    /// record), so a part knows only its own: the merge names the classes up to the largest label
    /// of any part, as the one-go build does.
    pub classes_from_labels: bool,
}

/// `part.json`: which part this is, of which build, and its exact statistic sums (the per-pixel
/// sums are in [`PIXEL_SUM_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Which part, and where it lies in the input.
    #[serde(flatten)]
    pub slice: PartSlice,
    /// Record layout.
    pub mode: Mode,
    /// Record side length.
    pub size: u32,
    /// The build's options and tool version; `created_unix` is this part's own.
    pub build: BuildInfo,
    /// Images in the sums.
    pub images: u64,
    /// Σ R, Σ G, Σ B over all pixels of this part's records.
    pub channel_sum: [u64; 3],
    /// Σ RR, Σ RG, Σ RB, Σ GG, Σ GB, Σ BB, as decimal strings (they can pass 2⁶⁴).
    pub cross_sum: [String; 6],
}

impl PartInfo {
    /// The description of the part `slice`, built with `build` in `mode`, whose records sum to
    /// `sums`.
    pub fn new(slice: PartSlice, mode: Mode, build: BuildInfo, sums: &ExactSums) -> PartInfo {
        PartInfo {
            slice,
            mode,
            size: sums.size,
            build,
            images: sums.images,
            channel_sum: sums.channel_sum,
            cross_sum: sums.cross_sum.map(|c| c.to_string()),
        }
    }

    /// The sums, with the per-pixel ones read from `pixel_sum` (the bytes of [`PIXEL_SUM_FILE`]).
    pub fn sums(&self, pixel_sum: &[u8], path: &Path) -> Result<ExactSums> {
        let s = self.size as usize;
        let cross = self.cross_sum.iter().map(|c| c.parse::<u128>().ok());
        let cross: Option<Vec<u128>> = cross.collect();
        let cross_sum: [u128; 6] = cross.and_then(|c| c.try_into().ok()).ok_or_else(|| {
            Error::format(path, "cross_sum is not six integers; rebuild the part")
        })?;
        Ok(ExactSums {
            size: self.size,
            images: self.images,
            pixel_sum: decode_npy_u64(pixel_sum, &[s, s, 3], path)?,
            channel_sum: self.channel_sum,
            cross_sum,
        })
    }
}

/// The header of a `.npy` of unsigned 64-bit integers of `shape`, padded as NumPy pads it.
fn npy_u64_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<u8', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Encodes `data` as a `.npy` of `<u8` (version 1.0, C order; `shape` has at least two axes).
pub fn encode_npy_u64(shape: &[usize], data: &[u64]) -> Vec<u8> {
    let mut out = npy_u64_header(shape);
    out.reserve(data.len() * 8);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a `.npy` written by [`encode_npy_u64`], checking the shape.
pub fn decode_npy_u64(bytes: &[u8], shape: &[usize], path: &Path) -> Result<Vec<u64>> {
    let header = npy_u64_header(shape);
    let n: usize = shape.iter().product();
    if !bytes.starts_with(&header) || bytes.len() != header.len() + n * 8 {
        return Err(Error::format(
            path,
            format!("not a uint64 .npy of shape {shape:?}; rebuild the part"),
        ));
    }
    Ok(bytes[header.len()..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_inputs_once_in_whole_shards() {
        for (inputs, shard_size, count) in [
            (32u64, 4u64, 5u32),
            (10, 1024, 4),
            (2000, 64, 4),
            (7, 1, 7),
            (0, 8, 3),
        ] {
            let ranges: Vec<_> = (1..=count)
                .map(|index| PartSpec { index, count }.input_range(inputs, shard_size))
                .collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().map(|r| r.end), Some(inputs));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert!(pair[0].end.is_multiple_of(shard_size) || pair[0].end == inputs);
            }
        }
        assert_eq!(PartSpec { index: 2, count: 5 }.input_range(32, 4), 4..12);
    }

    #[test]
    fn container_files_are_cut_one_by_one() {
        for (files, count) in [(5u64, 3u32), (4, 4), (2, 5), (0, 2), (10, 7)] {
            let ranges: Vec<_> = (1..=count)
                .map(|index| CutBy::Files.range(PartSpec { index, count }, files, 1024))
                .collect();
            for (k, r) in ranges.iter().enumerate() {
                let k = k as u64;
                let n = count as u64;
                assert_eq!(
                    *r,
                    k * files / n..(k + 1) * files / n,
                    "{files} files, {count} parts"
                );
            }
        }
        // Two files in five parts: three parts read nothing.
        let empty = (1..=5)
            .filter(|&index| {
                CutBy::Files
                    .range(PartSpec { index, count: 5 }, 2, 8)
                    .is_empty()
            })
            .count();
        assert_eq!(empty, 3);
    }

    #[test]
    fn the_files_digest_tells_inputs_apart() {
        let file = |name: &str, bytes: Option<u64>| ContainerFile {
            name: name.into(),
            bytes,
        };
        let files = [file("a.tar", Some(10)), file("b.tar", Some(20))];
        let base = files_digest(&[], true, "cls", &files);
        assert_eq!(base, files_digest(&[], true, "cls", &files.clone()));
        let bigger = [file("a.tar", Some(10)), file("b.tar", Some(21))];
        let renamed = [file("a.tar", Some(10)), file("c.tar", Some(20))];
        let fewer = [file("a.tar", Some(10))];
        let remote = [file("a.tar", Some(10)), file("b.tar", None)];
        for other in [
            files_digest(&[], true, "cls", &bigger),
            files_digest(&[], true, "cls", &renamed),
            files_digest(&[], true, "cls", &fewer),
            files_digest(&[], true, "cls", &remote),
            files_digest(&[], true, "json:label", &files),
            files_digest(&["cat".into()], false, "cls", &files),
            files_digest(&[], false, "cls", &files),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn part_specs_parse_and_refuse() {
        assert_eq!(
            "3/8".parse::<PartSpec>().ok(),
            Some(PartSpec { index: 3, count: 8 })
        );
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "-1/2"] {
            assert!(bad.parse::<PartSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn npy_u64_round_trips() -> Result<()> {
        let data: Vec<u64> = (0..12).map(|i| i * (u64::MAX / 13)).collect();
        let bytes = encode_npy_u64(&[2, 2, 3], &data);
        assert_eq!((bytes.len() - 96) % 64, 0);
        assert_eq!(
            decode_npy_u64(&bytes, &[2, 2, 3], Path::new("p.npy"))?,
            data
        );
        assert!(decode_npy_u64(&bytes, &[2, 3, 2], Path::new("p.npy")).is_err());
        Ok(())
    }
}
