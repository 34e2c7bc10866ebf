//! Lossless conversion between shard directories and HDF5 files, both ways: a dataset converted
//! to HDF5 and back is the same, file for file, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use super::keys::*;
use super::reader::{foreign_build_info, h5err, read_scalar_string, H5Source};
use super::writer::H5Writer;
use super::ConvertOptions;
use crate::error::{Error, IoContext, Result};
use crate::shards::{DatasetWriter, ShardSource, INDEX_FILE, REJECTS_FILE};
use crate::source::{DatasetInfo, Mode, RecordSource};

/// See [`super::shards_to_hdf5`].
pub(super) fn shards_to_hdf5(
    dir: &Path,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DatasetInfo> {
    let (ds, stats) = ShardSource::open(dir, true)?;
    let info = ds.info();
    if info.mode != Mode::Raw {
        return Err(Error::Usage(format!(
            "{}: {} shards; converting to HDF5 needs raw shards (rebuild with --mode raw, or build straight to HDF5 with --format hdf5)",
            dir.display(),
            info.mode
        )));
    }
    let stats = stats.ok_or_else(|| Error::format(dir, "no statistics"))?;
    let mut w = H5Writer::create(out, info.size, info.classes.clone())?;
    let mut bytes = Vec::new();
    for i in 0..info.num_records as usize {
        let label = ds.read_record(i, &mut bytes)?;
        w.push(label, Path::new(""), &bytes)?;
        progress(1);
    }
    let text = |name: &str| -> Result<String> {
        let p = dir.join(name);
        fs::read_to_string(&p).at(&p)
    };
    w.set_reports(text(INDEX_FILE)?, text(REJECTS_FILE)?, info.rejected);
    let mut info = w
        .commit_manifest(&stats, ds.manifest().clone())?
        .dataset_info(true);
    info.format = "hdf5".into();
    Ok(info)
}

/// See [`super::hdf5_to_shards`].
pub(super) fn hdf5_to_shards(
    path: &Path,
    out: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<DatasetInfo> {
    let (ds, stats) = H5Source::open(path, &opts.keys)?;
    let info = ds.info();
    let file = ::hdf5::File::open(path).map_err(|e| h5err(path, "cannot open", e))?;
    let text = |key: &str| -> Result<Option<String>> {
        match file.dataset(key) {
            Ok(d) => read_scalar_string(path, &d).map(Some),
            Err(_) => Ok(None),
        }
    };
    let ours = file.link_exists(MANIFEST_KEY);
    let mut build = info.build.clone();
    if !ours {
        build = foreign_build_info(path, opts.shard_size);
    }
    let shard_size = build.shard_size.max(1);
    let size = info.size;
    let mut w = DatasetWriter::create(out, Mode::Raw, size, shard_size, info.classes.clone())?;
    let mut buf = vec![0u8; size as usize * size as usize * 3];
    let mut resize = crate::prep::ResizeCrop::new();
    // Source paths: from the file's index_tsv when it has one, else `images[i]`.
    let index = text(INDEX_KEY)?;
    let paths: Vec<PathBuf> = index
        .as_deref()
        .map(|t| {
            t.lines()
                .skip(1)
                .filter_map(|l| l.split('\t').nth(4))
                .map(untsv)
                .collect()
        })
        .unwrap_or_default();
    let key = &opts.keys.images;
    for i in 0..info.num_records as usize {
        let label = ds.read_pixels(i, &mut resize, &mut buf)?;
        let rel = paths
            .get(i)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(format!("{key}[{i}]")));
        w.push(label, &rel, &buf)?;
        progress(1);
    }
    // index.tsv is regenerated (same sources, same shards); rejects.tsv comes back verbatim.
    if let Some(rejects) = text(REJECTS_KEY)? {
        w.restore_rejects(rejects.as_bytes(), info.rejected)?;
    }
    drop(file);
    Ok(w.commit(&stats, build)?.dataset_info(true))
}

/// Inverse of [`crate::shards::tsv_path`].
fn untsv(cell: &str) -> PathBuf {
    let b = cell.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'\\' => out.push(b'\\'),
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'x' if i + 3 < b.len() && cell.is_char_boundary(i + 4) => {
                    match u8::from_str_radix(&cell[i + 2..i + 4], 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 4;
                            continue;
                        }
                        Err(_) => out.extend_from_slice(&b[i..i + 2]),
                    }
                }
                _ => out.extend_from_slice(&b[i..i + 2]),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(out))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&out).into_owned())
    }
}
