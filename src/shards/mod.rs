//! Shards (paper §2's preprocessed training set, stored once): the on-disk format, the atomic
//! writer ([`DatasetWriter`], a [`crate::sink::DatasetSink`]) and the checking reader
//! ([`ShardSource`], a [`crate::source::RecordSource`]). `docs/FORMAT.md` specifies the layout byte
//! by byte. Other storage formats live beside this module, never inside it.

mod format;
mod manifest;
mod merge;
mod reader;
mod writer;

pub(crate) use manifest::{encode_npy_f32, file_info};
pub use manifest::{
    seal_manifest, FileInfo, Manifest, ShardInfo, StatsInfo, CHECKSUM_KEY, FORMAT_NAME,
    FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE, MEAN_IMAGE_FILE, REJECTS_FILE, STATS_UNITS,
};
pub use merge::{merge_parts, MergeSummary};
pub use reader::ShardSource;
pub(crate) use reader::{open_shard, read_shard_pixels, stats_from_mean_image, Shard};
#[cfg(feature = "hdf5")]
pub(crate) use writer::tsv_path;
pub use writer::{Adopted, DatasetWriter};
