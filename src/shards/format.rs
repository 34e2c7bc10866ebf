//! The binary layout of one shard file (`docs/FORMAT.md` is the full specification).
//!
//! ```text
//! offset 0     header, 64 bytes
//! offset 64    record table: count × 32-byte entries
//! data_offset  records (4096-aligned start; raw records each 64-byte aligned)
//! ```
//! All integers little-endian. Checksums are CRC-32C (Castagnoli).

use std::path::Path;

use crate::error::{Error, Result};
use crate::source::Mode;

/// First 8 bytes of every shard.
pub const SHARD_MAGIC: &[u8; 8] = b"ALXSHARD";
/// Version of the shard layout written by this crate.
pub const SHARD_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 64;
/// Record-table entry length in bytes.
pub const ENTRY_LEN: usize = 32;
/// Alignment of the data region's start.
pub const DATA_ALIGN: u64 = 4096;
/// Alignment of each raw-mode record.
pub const RECORD_ALIGN: u64 = 64;

impl Mode {
    /// Numeric code stored in shard headers.
    pub fn code(self) -> u32 {
        match self {
            Mode::Raw => 0,
            Mode::Jpeg => 1,
            Mode::Original => 2,
        }
    }

    /// Inverse of [`Mode::code`].
    pub fn from_code(code: u32) -> Option<Mode> {
        match code {
            0 => Some(Mode::Raw),
            1 => Some(Mode::Jpeg),
            2 => Some(Mode::Original),
            _ => None,
        }
    }
}

/// The 64-byte shard header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    /// Record layout.
    pub mode: Mode,
    /// Number of records.
    pub count: u64,
    /// Image side length in pixels.
    pub size: u32,
    /// Start of the data region (the table starts at [`HEADER_LEN`]).
    pub data_offset: u64,
    /// Total file length in bytes.
    pub file_len: u64,
    /// CRC-32C of the record table.
    pub table_crc: u32,
}

impl ShardHeader {
    /// Serializes to 64 bytes; bytes 60..64 hold the CRC-32C of bytes 0..60.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(SHARD_MAGIC);
        b[8..12].copy_from_slice(&SHARD_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.mode.code().to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..28].copy_from_slice(&self.size.to_le_bytes());
        b[28..32].copy_from_slice(&3u32.to_le_bytes());
        b[32..40].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
        b[40..48].copy_from_slice(&self.data_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.file_len.to_le_bytes());
        b[56..60].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks a header; `path` names the shard in errors.
    pub fn decode(b: &[u8], path: &Path) -> Result<ShardHeader> {
        let bad = |msg: String| {
            Error::format(
                path,
                format!(
                    "{msg}; the shard is damaged or not an alexpipe shard — rebuild the dataset"
                ),
            )
        };
        if b.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes is shorter than the 64-byte header",
                b.len()
            )));
        }
        if &b[0..8] != SHARD_MAGIC {
            return Err(bad("bad magic".into()));
        }
        let crc = u32_at(b, 60);
        if crc32c::crc32c(&b[0..60]) != crc {
            return Err(bad("header checksum mismatch".into()));
        }
        let version = u32_at(b, 8);
        if version != SHARD_VERSION {
            return Err(Error::format(
                path,
                format!("shard format version {version}; this alexpipe reads version {SHARD_VERSION} — rebuild with this version or upgrade alexpipe"),
            ));
        }
        let mode = Mode::from_code(u32_at(b, 12))
            .ok_or_else(|| bad(format!("unknown mode {}", u32_at(b, 12))))?;
        let channels = u32_at(b, 28);
        let table_offset = u64_at(b, 32);
        if channels != 3 || table_offset != HEADER_LEN as u64 {
            return Err(bad(format!(
                "unexpected channels {channels} / table offset {table_offset}"
            )));
        }
        Ok(ShardHeader {
            mode,
            count: u64_at(b, 16),
            size: u32_at(b, 24),
            data_offset: u64_at(b, 40),
            file_len: u64_at(b, 48),
            table_crc: u32_at(b, 56),
        })
    }
}

/// One record-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Byte offset of the record in the shard file.
    pub offset: u64,
    /// Record length in bytes.
    pub len: u64,
    /// Class index.
    pub label: u32,
    /// CRC-32C of the record's bytes.
    pub crc: u32,
    /// The record's index in the whole dataset.
    pub global_index: u64,
}

impl Entry {
    /// Serializes to 32 bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..20].copy_from_slice(&self.label.to_le_bytes());
        b[20..24].copy_from_slice(&self.crc.to_le_bytes());
        b[24..32].copy_from_slice(&self.global_index.to_le_bytes());
        b
    }

    /// Parses 32 bytes.
    pub fn decode(b: &[u8]) -> Entry {
        Entry {
            offset: u64_at(b, 0),
            len: u64_at(b, 8),
            label: u32_at(b, 16),
            crc: u32_at(b, 20),
            global_index: u64_at(b, 24),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = ShardHeader {
            mode: Mode::Jpeg,
            count: 7,
            size: 256,
            data_offset: 4096,
            file_len: 123_456,
            table_crc: 0xDEAD_BEEF,
        };
        let mut b = h.encode();
        assert_eq!(ShardHeader::decode(&b, Path::new("s")).ok(), Some(h));
        b[17] ^= 1;
        let err = ShardHeader::decode(&b, Path::new("shard-000.bin"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shard-000.bin") && err.contains("checksum"),
            "{err}"
        );
    }

    #[test]
    fn entry_round_trips() {
        let e = Entry {
            offset: 1 << 40,
            len: 196_608,
            label: 999,
            crc: 42,
            global_index: 1_281_166,
        };
        assert_eq!(Entry::decode(&e.encode()), e);
        assert_eq!(align_up(196_608 + 1, 64), 196_672);
    }
}
