//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly), shared with
//! `tests/fuzz_regressions.rs`, which replays every input kept in `tests/fuzz_regressions/` with
//! stable Rust. Each function must return normally for *any* input: a panic, hang or runaway
//! allocation is a bug. Inputs are interpreted as:
//!
//! - [`manifest`]: the bytes of `manifest.json` next to a valid small raw dataset's files;
//! - [`shard_reader`]: the bytes of `shard-00000.bin` of a valid small dataset (raw, or jpeg when
//!   byte 12, the header's mode, is 1), with the manifest's size and CRC for that shard updated
//!   to match, so that the header, table and record checks are what stands in the way; the last
//!   byte's low 3 bits also recompute the header, table and record CRCs ([`fix_checksums`]);
//! - [`jpeg_record`]: a jpeg-mode record, decoded and resized as `Dataset::read_pixels` does;
//! - [`build_decode`]: an input file's bytes, through build-shards' sniff, decode, resize, crop
//!   and re-encode (`alexpipe::build::prepare_file_bytes`).
//!
//! Decoding is capped at [`MAX_PIXELS`] so that the memory bound under test is that of a worker
//! with `--max-pixels 4194304`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use alexpipe::build::prepare_file_bytes;
use alexpipe::prep::{decode_rgb, DecodeOptions, ResizeCrop};
use alexpipe::{BuildConfig, Dataset, Mode};

/// Side of the records of the base datasets.
pub const SIZE: u32 = 16;
/// The decompression-bomb guard the targets run with.
pub const MAX_PIXELS: u64 = 1 << 22;

struct Base {
    root: PathBuf,
    raw: PathBuf,
    jpeg: PathBuf,
    /// Serialises targets that rewrite files under `root` (tests run on several threads).
    lock: Mutex<()>,
}

fn fixtures() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("fixtures/images"),
        here.join("../fixtures/images"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .expect("fixtures/images next to the crate or its parent")
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let tmp = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = tmp.join(format!("alexpipe-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create the fuzz work directory");
        let _ = BASE_ROOT.set(root.clone());
        let make = |mode: Mode, name: &str| {
            let out = root.join(name);
            let mut cfg = BuildConfig::new(fixtures(), &out);
            cfg.mode = mode;
            cfg.size = SIZE;
            cfg.shard_size = 4;
            cfg.threads = Some(1);
            alexpipe::build(&cfg, &|_| {}).expect("build the base dataset");
            out
        };
        let raw = make(Mode::Raw, "raw");
        let jpeg = make(Mode::Jpeg, "jpeg");
        Base {
            root,
            raw,
            jpeg,
            lock: Mutex::new(()),
        }
    })
}

/// Removes the work directory (the fuzz targets never exit normally; tests call this).
pub fn cleanup() {
    if let Some(b) = BASE_ROOT.get() {
        let _ = fs::remove_dir_all(b);
    }
}
static BASE_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// A copy of `src` (a dataset) at `dst`, made once.
fn work_copy(src: &Path, dst: &Path) {
    if dst.exists() {
        return;
    }
    fs::create_dir_all(dst).expect("work dir");
    for e in fs::read_dir(src).expect("read base dataset").flatten() {
        fs::copy(e.path(), dst.join(e.file_name())).expect("copy base dataset");
    }
}

/// Opens `dir` and reads every record; when `verify` passes, raw records must all read.
fn exercise(dir: &Path) {
    let Ok(ds) = Dataset::open(dir) else {
        return;
    };
    let verified = ds.verify().is_ok();
    let s = ds.size() as usize;
    // A dataset that opened has a size matching its mean image, so this allocation is bounded by
    // what the files already hold.
    let mut buf = vec![0u8; s * s * 3];
    let mut resize = ResizeCrop::new();
    for i in 0..ds.len() {
        let r = ds.read_pixels(i, &mut resize, &mut buf);
        if verified && ds.mode() == Mode::Raw {
            assert!(r.is_ok(), "verify passed but record {i} fails: {r:?}");
        }
        if let Err(e) = r {
            let msg = e.to_string();
            assert!(msg.contains("shard-"), "error names no shard: {msg}");
        }
    }
    let _ = ds.record(ds.len());
}

/// Fuzz target `manifest`.
pub fn manifest(data: &[u8]) {
    let b = base();
    let _guard = b.lock.lock().unwrap_or_else(|p| p.into_inner());
    let dir = b.root.join("work-manifest");
    work_copy(&b.raw, &dir);
    fs::write(dir.join("manifest.json"), data).expect("write manifest");
    exercise(&dir);
    // The manifest's own checksum stops almost every mutation at open; sealed again, a mutation
    // that is still JSON reaches the checks behind it.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(sealed) = alexpipe::shards::seal_manifest(&value) {
            fs::write(dir.join("manifest.json"), sealed).expect("write manifest");
            exercise(&dir);
        }
    }
}

/// Fuzz target `shard_reader`.
pub fn shard_reader(data: &[u8]) {
    let b = base();
    let _guard = b.lock.lock().unwrap_or_else(|p| p.into_inner());
    let (src, dir) = if data.get(12) == Some(&1) {
        (&b.jpeg, b.root.join("work-shard-jpeg"))
    } else {
        (&b.raw, b.root.join("work-shard-raw"))
    };
    work_copy(src, &dir);
    let data = &fix_checksums(data);
    let text = fs::read(src.join("manifest.json")).expect("base manifest");
    let mut m: serde_json::Value = serde_json::from_slice(&text).expect("base manifest parses");
    m["shards"][0]["bytes"] = serde_json::json!(data.len());
    m["shards"][0]["crc32c"] = serde_json::json!(crc32c::crc32c(data));
    fs::write(dir.join("shard-00000.bin"), data).expect("write shard");
    fs::write(
        dir.join("manifest.json"),
        alexpipe::shards::seal_manifest(&m).expect("manifest serialises"),
    )
    .expect("write manifest");
    exercise(&dir);
}

/// The input's last byte says which checksums to recompute after the mutation (bit 0: header,
/// bit 1: table, bit 2: records), so that the fuzzer also reaches the checks behind each CRC
/// instead of stopping at it: a damaged shard whose checksums were rewritten to match.
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    let flags = data.last().copied().unwrap_or(0);
    if b.len() < 64 {
        return b;
    }
    let u64_at = |b: &[u8], at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let count = u64_at(&b, 16);
    let table_end = count
        .checked_mul(32)
        .and_then(|t| t.checked_add(64))
        .filter(|&t| t <= b.len() as u64)
        .map(|t| t as usize);
    if let Some(end) = table_end {
        if flags & 4 != 0 {
            for i in 0..count as usize {
                let e = 64 + 32 * i;
                let (off, len) = (u64_at(&b, e), u64_at(&b, e + 8));
                if let Some(stop) = off.checked_add(len).filter(|&x| x <= b.len() as u64) {
                    let crc = crc32c::crc32c(&b[off as usize..stop as usize]);
                    b[e + 20..e + 24].copy_from_slice(&crc.to_le_bytes());
                }
            }
        }
        if flags & 2 != 0 {
            let crc = crc32c::crc32c(&b[64..end]);
            b[56..60].copy_from_slice(&crc.to_le_bytes());
        }
    }
    if flags & 1 != 0 {
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    b
}

/// Fuzz target `jpeg_record`.
pub fn jpeg_record(data: &[u8]) {
    // The last byte's low bit picks draft (DCT-scaled) decoding, as original-mode --draft reads do.
    let draft = data.last().is_some_and(|b| b & 1 == 1);
    let opts = DecodeOptions {
        max_pixels: MAX_PIXELS,
        draft_for: draft.then_some(SIZE),
    };
    if let Ok(img) = decode_rgb(data, &opts) {
        assert_eq!(
            img.pixels.len(),
            img.width as usize * img.height as usize * 3
        );
        assert!(img.width as u64 * img.height as u64 <= MAX_PIXELS);
        let mut out = vec![0u8; (SIZE * SIZE * 3) as usize];
        ResizeCrop::new().resize_center_crop(&img, SIZE, &mut out);
    }
}

/// Fuzz target `build_decode`.
pub fn build_decode(data: &[u8]) {
    let mode = match data.last().map(|b| b % 3) {
        Some(1) => Mode::Jpeg,
        Some(2) => Mode::Original,
        _ => Mode::Raw,
    };
    let mut cfg = BuildConfig::new("in", "out");
    cfg.size = SIZE;
    cfg.mode = mode;
    cfg.max_pixels = MAX_PIXELS;
    match prepare_file_bytes(data, &cfg) {
        Ok(record) => match mode {
            Mode::Raw => assert_eq!(record.len(), (SIZE * SIZE * 3) as usize),
            Mode::Original => assert_eq!(record, data),
            Mode::Jpeg => {
                let img = decode_rgb(&record, &DecodeOptions::default()).expect("our JPEG decodes");
                assert_eq!((img.width, img.height), (SIZE, SIZE));
            }
        },
        Err(reason) => assert!(
            !matches!(reason, alexpipe::prep::RejectReason::DecoderPanic(_)),
            "a decoder panicked (contained in a build, but a bug): {reason}"
        ),
    }
}

/// Valid (and slightly damaged) inputs for each target: the base datasets' manifests and first
/// shards, fixture images and jpeg-mode records. The fuzz seed corpus is made from these
/// (docs/RELIABILITY.md), and `tests/fuzz_regressions.rs` replays them. Not in the fuzz builds.
#[cfg(test)]
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let b = base();
    let mut out = Vec::new();
    let read = |p: PathBuf| fs::read(&p).expect("read seed");
    out.push(("manifest", "raw".into(), read(b.raw.join("manifest.json"))));
    for (name, dir) in [("raw", &b.raw), ("jpeg", &b.jpeg)] {
        let shard = read(dir.join("shard-00000.bin"));
        out.push(("shard_reader", name.into(), shard.clone()));
        let mut fixed = shard.clone();
        if let Some(last) = fixed.last_mut() {
            *last = 7; // recompute every checksum after mutating
        }
        out.push(("shard_reader", format!("{name}-fix-crcs"), fixed));
        out.push((
            "shard_reader",
            format!("{name}-truncated"),
            shard[..shard.len() / 2].to_vec(),
        ));
    }
    // jpeg-mode records: the base jpeg dataset's, as stored (small JPEGs: also build inputs).
    let ds = Dataset::open(&b.jpeg).expect("open base");
    for i in 0..3 {
        let rec = ds.record(i).expect("record");
        out.push(("build_decode", format!("record-{i}.jpg"), rec.bytes.clone()));
        out.push(("jpeg_record", format!("record-{i}"), rec.bytes));
    }
    // Small fixture files (a few kB: the fuzzer runs faster on small inputs).
    let mut files: Vec<PathBuf> = ["blobs", "checkers", "circles", "stripes"]
        .iter()
        .flat_map(|c| fs::read_dir(fixtures().join(c)).expect("ls").flatten())
        .map(|e| e.path())
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() <= 8_000))
        .collect();
    files.sort();
    for p in files {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = read(p);
        if alexpipe::prep::is_jpeg(&bytes) && bytes.len() < 2_000 {
            out.push(("jpeg_record", name.clone(), bytes.clone()));
        }
        out.push(("build_decode", name, bytes));
    }
    // Tiny images in every other format the `image` crate decodes for us.
    let img = image::RgbaImage::from_fn(5, 4, |x, y| {
        image::Rgba([x as u8 * 50, y as u8 * 60, 7, 200])
    });
    let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
    use image::ImageFormat as F;
    for (fmt, name) in [
        (F::Png, "png"),
        (F::Gif, "gif"),
        (F::Bmp, "bmp"),
        (F::Tiff, "tiff"),
        (F::WebP, "webp"),
        (F::Pnm, "pnm"),
        (F::Tga, "tga"),
        (F::Ico, "ico"),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let written = if fmt == F::Pnm {
            rgb.write_to(&mut bytes, fmt)
        } else {
            img.write_to(&mut bytes, fmt)
        };
        if written.is_ok() {
            out.push(("build_decode", format!("tiny.{name}"), bytes.into_inner()));
        }
    }
    out
}
