//! Shards (paper §2's preprocessed training set, stored once): the on-disk format, the atomic
//! writer ([`DatasetWriter`], a [`crate::sink::DatasetSink`]) and the checking reader
//! ([`ShardSource`], a [`crate::source::RecordSource`]). `docs/FORMAT.md` specifies the layout byte
//! by byte. Other storage formats live beside this module, never inside it.

mod format;
mod manifest;
mod reader;
mod writer;

pub use format::{
    align_up, Entry, ShardHeader, DATA_ALIGN, ENTRY_LEN, HEADER_LEN, RECORD_ALIGN, SHARD_MAGIC,
    SHARD_VERSION,
};
pub use manifest::{
    decode_npy_f32, encode_npy_f32, file_info, seal_manifest, FileInfo, Manifest, ShardInfo,
    StatsInfo, CHECKSUM_KEY, FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE, MAX_SIZE,
    MEAN_IMAGE_FILE, REJECTS_FILE, STATS_UNITS,
};
pub use reader::ShardSource;
pub use writer::{check_output_dir, tsv_path, DatasetWriter, ShardWriter};
