//! One part of a build spread over many machines (`build-shards INPUT OUT --part K/N`): which
//! inputs part K of N takes, and what a part keeps besides its records so that
//! [`crate::shards::merge_parts`] can join the N parts into the dataset a build in one go makes.
//!
//! Every machine that lists the same input discovers the same inputs in the same order (§2's
//! training set, sorted), and part K takes one contiguous slice of them. Slices are cut in whole
//! multiples of `--shard-size` inputs, so that where no input is rejected the parts' shards are
//! exactly the one-go build's shards and the merge only links or copies them. A part keeps the
//! exact integer sums of its statistics ([`ExactSums`]: `pixel_sum.npy` and `part.json`), which add
//! up to the one-go sums, so the merged mean image and eigenbasis are bit-identical.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
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
    /// The inputs `start..end` this part takes of `inputs` discovered ones: the inputs are cut
    /// into blocks of `shard_size` (the last one shorter) and part K gets blocks
    /// `⌊(K−1)·B/N⌋ .. ⌊K·B/N⌋` of the B blocks, so parts differ by at most one block and every
    /// part but the last starts and ends on a shard boundary of the one-go build (when nothing
    /// before it is rejected). With fewer blocks than parts, some parts are empty.
    pub fn input_range(&self, inputs: u64, shard_size: u64) -> std::ops::Range<u64> {
        let shard_size = shard_size.max(1);
        let blocks = inputs.div_ceil(shard_size) as u128;
        let n = self.count as u128;
        let block = |k: u128| ((k * blocks / n) as u64 * shard_size).min(inputs);
        block(self.index as u128 - 1)..block(self.index as u128)
    }
}

/// A CRC-32C of everything discovery found, in order: the class names and each input's name,
/// label and refusal. Parts whose inputs differ (another folder, a file added on one machine) have
/// different digests, and the merge refuses them.
pub fn inputs_digest(classes: &[String], sources: &[Source]) -> String {
    let mut crc = 0u32;
    for class in classes {
        crc = crc32c::crc32c_append(crc, class.as_bytes());
        crc = crc32c::crc32c_append(crc, b"\0");
    }
    crc = crc32c::crc32c_append(crc, b"\n");
    for src in sources {
        crc = crc32c::crc32c_append(crc, src.rel.as_os_str().as_encoded_bytes());
        let label = src.label.map_or("-".to_string(), |l| l.to_string());
        let refused = src.refused.as_ref().map_or("", |r| r.kind());
        crc = crc32c::crc32c_append(crc, format!("\0{label}\0{refused}\n").as_bytes());
    }
    format!("{crc:08x}")
}

/// Where a part lies in the discovered inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSlice {
    /// Which part of how many.
    pub part: PartSpec,
    /// Inputs discovery found in the whole INPUT.
    pub inputs: u64,
    /// The inputs this part takes (0-based, in input order).
    pub range: std::ops::Range<u64>,
    /// [`inputs_digest`] of the whole discovered input.
    pub inputs_digest: String,
}

/// `part.json`: which part this is, of which build, and its exact statistic sums (the per-pixel
/// sums are in [`PIXEL_SUM_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Which part of how many.
    pub part: PartSpec,
    /// Inputs discovery found in the whole INPUT.
    pub inputs: u64,
    /// The first input of this part (0-based, in input order).
    pub first_input: u64,
    /// One past its last input.
    pub end_input: u64,
    /// [`inputs_digest`] of the whole discovered input.
    pub inputs_digest: String,
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
            part: slice.part,
            inputs: slice.inputs,
            first_input: slice.range.start,
            end_input: slice.range.end,
            inputs_digest: slice.inputs_digest,
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
