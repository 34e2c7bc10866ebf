//! Helpers shared by the integration-test binaries (`mod common;` in each root): the bundled fixtures,
//! also written as WebDataset tars or parquet files, building them, and reading a dataset's pixels
//! back. Tests keep their own assertions; nothing here checks anything beyond "this step worked".
//! Not every binary uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use alexpipe::prep::ResizeCrop;
use alexpipe::{build, BuildConfig, BuildSummary, Dataset, Mode};

/// `fixtures/images`: 32 generated images in class folders, one of them a broken JPEG.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/images")
}

/// A build configuration of the fixtures into `out`: records of `size` pixels, `mode`, and
/// `shard_size` records per shard (threads: the default).
pub fn fixtures_config(out: &Path, size: u32, mode: Mode, shard_size: u64) -> BuildConfig {
    let mut cfg = BuildConfig::new(fixtures(), out);
    cfg.size = size;
    cfg.mode = mode;
    cfg.shard_size = shard_size;
    cfg
}

/// Builds the fixtures into `out` (see [`fixtures_config`]) with `threads` build threads.
pub fn build_fixtures(
    out: &Path,
    size: u32,
    mode: Mode,
    shard_size: u64,
    threads: Option<usize>,
) -> BuildSummary {
    let mut cfg = fixtures_config(out, size, mode, shard_size);
    cfg.threads = threads;
    build(&cfg, &|_| {}).expect("build fixtures")
}

/// Every record's resized pixels (`size`×`size`×3 HWC), or the error reading it.
pub fn read_all_pixels(ds: &Dataset) -> Vec<alexpipe::Result<Vec<u8>>> {
    let side = ds.size() as usize;
    let mut resize = ResizeCrop::new();
    (0..ds.len())
        .map(|i| {
            let mut buf = vec![0u8; side * side * 3];
            ds.read_pixels(i, &mut resize, &mut buf).map(|_| buf)
        })
        .collect()
}

/// Every record's pixels; panics if one does not read.
pub fn all_pixels(ds: &Dataset) -> Vec<Vec<u8>> {
    read_all_pixels(ds)
        .into_iter()
        .map(|r| r.expect("intact record"))
        .collect()
}

/// The pixels of record `i`.
pub fn pixels(ds: &Dataset, i: usize) -> Vec<u8> {
    let side = ds.size() as usize;
    let mut buf = vec![0u8; side * side * 3];
    ds.read_pixels(i, &mut ResizeCrop::new(), &mut buf)
        .expect("pixels");
    buf
}

/// Whether tests run in CI (`CI` set to anything but empty, `0` or `false`): there a test whose
/// precondition is missing must fail rather than skip, or a broken environment shows as green.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The entries of `dir`, sorted.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a fixtures directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    v.sort();
    v
}

/// The class names of the fixtures: their folder names, sorted.
pub fn fixture_classes() -> Vec<String> {
    sorted_entries(&fixtures())
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The fixtures' files in folder order (classes sorted, files sorted in each): the file, the
/// index of its class folder, and its bytes.
pub fn fixture_files() -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut files = Vec::new();
    for (label, class) in sorted_entries(&fixtures()).into_iter().enumerate() {
        for file in sorted_entries(&class) {
            let bytes = std::fs::read(&file).expect("fixture file");
            files.push((file, label as u32, bytes));
        }
    }
    files
}

/// The fixtures as WebDataset tars `dir/shard-NNNNNN.tar` of `per_tar` samples each, in folder
/// order, as webdataset's `TarWriter` lays them out: sample `sNNN` is the member `sNNN.EXT` (the
/// file's bytes) and `sNNN.cls` (its class folder's index), so the last class is only in the last
/// tars. Returns the tars in order.
pub fn fixtures_as_tars(dir: &Path, per_tar: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("tar dir");
    let files = fixture_files();
    let mut tars = Vec::new();
    for (t, chunk) in files.chunks(per_tar).enumerate() {
        let path = dir.join(format!("shard-{t:06}.tar"));
        let mut tar = tar::Builder::new(std::fs::File::create(&path).expect("tar file"));
        for (i, (file, label, bytes)) in chunk.iter().enumerate() {
            let key = format!("s{:03}", t * per_tar + i);
            let ext = file
                .extension()
                .map_or("jpg".into(), |e| e.to_string_lossy().to_ascii_lowercase());
            let label = label.to_string();
            for (name, data) in [
                (format!("{key}.{ext}"), bytes.as_slice()),
                (format!("{key}.cls"), label.as_bytes()),
            ] {
                let mut header = tar::Header::new_ustar();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                tar.append_data(&mut header, name, data)
                    .expect("tar member");
            }
        }
        tar.finish().expect("tar end");
        tars.push(path);
    }
    tars
}

/// The fixtures as parquet files `dir/train-NNNNN.parquet` of `per_file` rows each (row groups of
/// 3 rows), in folder order, laid out as Hugging Face `datasets` writes an `Image` and a
/// `ClassLabel` feature: `image` a struct of `bytes` and `path`, `label` int64, the class names in
/// the `huggingface` schema metadata. The image cell of row `null_row` (counted over all files) is
/// null. Returns the files in order.
pub fn fixtures_as_parquet(dir: &Path, per_file: usize, null_row: usize) -> Vec<PathBuf> {
    use std::sync::Arc;

    use arrow_array::{
        Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray,
    };
    use arrow_schema::{DataType, Field, Schema};

    std::fs::create_dir_all(dir).expect("parquet dir");
    let names = serde_json::to_string(&fixture_classes()).expect("names");
    let hf = format!(
        r#"{{"info": {{"features": {{"image": {{"_type": "Image"}}, "label": {{"names": {names}, "_type": "ClassLabel"}}}}}}}}"#
    );
    let files = fixture_files();
    let mut out = Vec::new();
    for (f, chunk) in files.chunks(per_file).enumerate() {
        let first = f * per_file;
        let cells = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, _, b))| (first + i != null_row).then_some(b.as_slice()));
        let bytes: ArrayRef = Arc::new(BinaryArray::from(cells.collect::<Vec<_>>()));
        let paths: ArrayRef = Arc::new(StringArray::from(
            chunk
                .iter()
                .map(|(p, _, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>(),
        ));
        let image = StructArray::from(vec![
            (Arc::new(Field::new("bytes", DataType::Binary, true)), bytes),
            (Arc::new(Field::new("path", DataType::Utf8, true)), paths),
        ]);
        let label: ArrayRef = Arc::new(Int64Array::from(
            chunk.iter().map(|(_, l, _)| *l as i64).collect::<Vec<_>>(),
        ));
        let schema = Schema::new_with_metadata(
            vec![
                Field::new("image", image.data_type().clone(), true),
                Field::new("label", DataType::Int64, true),
            ],
            std::collections::HashMap::from([("huggingface".to_string(), hf.clone())]),
        );
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(image), label]).expect("batch");
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(3))
            .build();
        let path = dir.join(format!("train-{f:05}.parquet"));
        let file = std::fs::File::create(&path).expect("parquet file");
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))
            .expect("parquet writer");
        w.write(&batch).expect("parquet rows");
        w.close().expect("parquet footer");
        out.push(path);
    }
    out
}
