//! HDF5 datasets, as h5py users have them (`--features hdf5`; `docs/HDF5.md` gives the layout): a
//! [`RecordSource`] (`reader.rs`), a [`DatasetSink`] (`writer.rs`) and lossless conversion to and
//! from shards (`convert.rs`), beside the shard format and behind the same seam.
//!
//! - Reading: any file with an N×S×S×3 uint8 image dataset and an N-long integer label dataset
//!   (names chosen by [`H5Keys`]) opens as a [`crate::Dataset`]; the statistics are read from the
//!   file when it holds ours, computed otherwise. When the images are stored unfiltered (contiguous,
//!   or in chunks of whole images, as ours are) every record's byte offset is looked up once at
//!   open and the file is memory-mapped: the loader's workers then read records in place, exactly
//!   as from raw shards, and never take HDF5's global lock. Compressed or otherwise filtered images
//!   go through `H5Dread` (serialized by that lock).
//! - Writing: `H5Writer` writes `images` (N, S, S, 3) u8 in chunks of one image, `labels` (N,)
//!   i64, `class_names`, the statistics and the provenance, into `OUT.partial-PID` then renames it.
//! - [`shards_to_hdf5`] / [`hdf5_to_shards`]: lossless conversion both ways.
//!
//! Without the `hdf5` feature every entry point returns [`crate::Error::Unsupported`] naming
//! the fix.

use std::path::Path;

#[cfg(not(feature = "hdf5"))]
use crate::error::Error;
use crate::error::Result;
use crate::sink::DatasetSink;
use crate::source::{DatasetInfo, RecordSource};
use crate::stats::Stats;

#[cfg(feature = "hdf5")]
mod convert;
#[cfg(feature = "hdf5")]
mod reader;
#[cfg(feature = "hdf5")]
mod writer;

/// Names of the image and label datasets inside an HDF5 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H5Keys {
    /// The N×S×S×3 uint8 image dataset (default `images`).
    pub images: String,
    /// The N-long integer label dataset (default `labels`).
    pub labels: String,
}

impl Default for H5Keys {
    fn default() -> Self {
        H5Keys {
            images: "images".into(),
            labels: "labels".into(),
        }
    }
}

/// Value of the root attribute `format` in files alexpipe writes.
pub const H5_FORMAT_NAME: &str = "alexpipe-hdf5";
/// Value of the root attribute `format_version`.
pub const H5_FORMAT_VERSION: u32 = 1;

/// The 8-byte signature that starts an HDF5 superblock.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// True when `path` is a regular file holding an HDF5 signature (at offset 0 or after a user block
/// of 512, 1024, … bytes, as the HDF5 specification allows).
pub fn is_hdf5_file(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut offset = 0u64;
    while offset + 8 <= len && offset <= 1 << 20 {
        let mut buf = [0u8; 8];
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_exact(&mut buf).is_err() {
            return false;
        }
        if &buf == SIGNATURE {
            return true;
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    false
}

/// Opens an HDF5 file holding an N×S×S×3 uint8 image dataset and an N-long integer label dataset
/// named by `keys`, with its statistics (read from the file, or computed when it has none).
pub fn open(path: &Path, keys: &H5Keys) -> Result<(Box<dyn RecordSource>, Stats)> {
    #[cfg(feature = "hdf5")]
    {
        let (source, stats) = reader::H5Source::open(path, keys)?;
        Ok((Box::new(source), stats))
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (path, keys);
        Err(no_feature())
    }
}

/// Starts an HDF5 file at `out` for `size`×`size` images of `classes` (written to
/// `OUT.partial-PID`, renamed into place on commit).
pub fn create_sink(out: &Path, size: u32, classes: Vec<String>) -> Result<Box<dyn DatasetSink>> {
    #[cfg(feature = "hdf5")]
    {
        Ok(Box::new(writer::H5Writer::create(out, size, classes)?))
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (out, size, classes);
        Err(no_feature())
    }
}

/// Converts the raw-mode shard dataset `dir` into the HDF5 file `out`, losslessly: images,
/// labels, class names, statistics, `index.tsv`, `rejects.tsv` and the manifest (provenance)
/// are all kept, so [`hdf5_to_shards`] gives back the same files byte for byte.
pub fn shards_to_hdf5(
    dir: &Path,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DatasetInfo> {
    #[cfg(feature = "hdf5")]
    {
        convert::shards_to_hdf5(dir, out, progress)
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (dir, out, progress);
        Err(no_feature())
    }
}

/// Converts the HDF5 file `path` (ours, or any with an image and a label dataset named by
/// `opts.keys`) into a raw-mode shard dataset at `out`. A file written by alexpipe gives back
/// the dataset it came from, byte for byte.
pub fn hdf5_to_shards(
    path: &Path,
    out: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DatasetInfo> {
    #[cfg(feature = "hdf5")]
    {
        convert::hdf5_to_shards(path, out, opts, progress)
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (path, out, opts, progress);
        Err(no_feature())
    }
}

#[cfg(not(feature = "hdf5"))]
fn no_feature() -> Error {
    Error::Unsupported(
        "this alexpipe was built without HDF5 support; rebuild it with `--features hdf5` \
         (needs libhdf5-dev and pkg-config: scripts/setup.sh installs them)"
            .into(),
    )
}

/// Names of the datasets and attributes alexpipe stores beside the images.
#[cfg(feature = "hdf5")]
mod keys {
    pub(super) const MANIFEST_KEY: &str = "alexpipe_manifest";
    pub(super) const INDEX_KEY: &str = "index_tsv";
    pub(super) const REJECTS_KEY: &str = "rejects_tsv";
    pub(super) const CLASSES_KEY: &str = "class_names";
    pub(super) const CRC_KEY: &str = "crc32c";
    pub(super) const STAT_KEYS: [&str; 6] = [
        "mean_image",
        "channel_mean",
        "channel_std",
        "covariance",
        "eigvals",
        "eigvecs",
    ];
}

/// Conversion options for [`hdf5_to_shards`] and [`shards_to_hdf5`].
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Dataset names in an HDF5 input.
    pub keys: H5Keys,
    /// Records per shard for HDF5 → shards when the file does not say (ours record it).
    pub shard_size: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            keys: H5Keys::default(),
            shard_size: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_at_the_start_or_after_a_user_block() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let write = |name: &str, at: usize| -> std::io::Result<std::path::PathBuf> {
            let mut bytes = vec![0u8; at + 64];
            bytes[at..at + 8].copy_from_slice(SIGNATURE);
            let p = dir.path().join(name);
            std::fs::write(&p, bytes)?;
            Ok(p)
        };
        assert!(is_hdf5_file(&write("a.h5", 0)?));
        assert!(is_hdf5_file(&write("b.h5", 512)?));
        assert!(is_hdf5_file(&write("c.h5", 2048)?));
        assert!(
            !is_hdf5_file(&write("d.h5", 100)?),
            "only at 0, 512, 1024, …"
        );
        assert!(!is_hdf5_file(dir.path()), "a directory");
        assert!(!is_hdf5_file(&dir.path().join("missing.h5")));
        Ok(())
    }

    #[cfg(not(feature = "hdf5"))]
    #[test]
    fn without_the_feature_an_hdf5_file_names_the_fix() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.h5");
        let mut bytes = SIGNATURE.to_vec();
        bytes.resize(64, 0);
        std::fs::write(&p, bytes)?;
        match crate::Dataset::open(&p) {
            Ok(_) => panic!("opened without HDF5 support"),
            Err(e) => assert!(e.to_string().contains("--features hdf5"), "{e}"),
        }
        Ok(())
    }
}
