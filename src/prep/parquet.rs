//! Parquet and Hugging Face `datasets` input: `.parquet` files (Hub snapshots keep them in
//! `data/`, `Dataset.to_parquet` writes one) and the Arrow IPC stream files (`.arrow`) that
//! `Dataset.save_to_disk` leaves beside its `state.json` and `dataset_info.json`.
//!
//! Files are read a row group (parquet) or a record batch (Arrow) at a time, by a thread of its
//! own a bounded number of rows ahead of the build, so memory stays bounded whatever the file
//! size. Each row becomes one [`Source`] named `FILE:row N` (N counted from 0 in the file). The
//! image column is the `datasets` `Image` feature as stored (a struct of `bytes` and `path`) or
//! plain binary; the label column any integer type. Class names come from `--class-names`, else
//! the `ClassLabel` feature in the `huggingface` schema metadata or `dataset_info.json`, else the
//! labels name their classes. A cell that holds only a path (`datasets` keeps local images by path
//! until they are embedded; `to_parquet` writes them so) is read from that file, relative to the
//! table file's directory unless absolute, as the folder input reads its files. A null image cell,
//! a path to no file, a null or negative label, and a row group that cannot be read become
//! rejects, one per row: nothing is lost.
//!
//! Not for writing parquet.

use std::fs;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::discover::{read_class_names, Inputs, Source};
use super::RejectReason;
use crate::error::{Error, IoContext, Result};

/// Rows per batch read: bounds the reader's memory to this many images (plus a row group's
/// compressed pages).
const BATCH_ROWS: usize = 64;

/// Rows read ahead of the build's feeder.
const READ_AHEAD: usize = 16;

/// The image columns tried when `--image-column` is not given, in order.
pub const IMAGE_COLUMNS: [&str; 2] = ["image", "img"];
/// The label columns tried when `--label-column` is not given, in order.
pub const LABEL_COLUMNS: [&str; 2] = ["label", "labels"];

/// How to read parquet and Arrow tables.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// `--image-column`.
    pub image_column: Option<String>,
    /// `--label-column`.
    pub label_column: Option<String>,
    /// `--class-names`: a file of class names, overriding the `ClassLabel` names.
    pub class_names: Option<PathBuf>,
    /// The largest image cell accepted.
    pub max_bytes: u64,
}

impl Default for ParquetOptions {
    /// The default columns and class names, and the cell limit of the default `--max-pixels`.
    fn default() -> Self {
        ParquetOptions {
            image_column: None,
            label_column: None,
            class_names: None,
            max_bytes: super::max_file_bytes(super::DEFAULT_MAX_PIXELS),
        }
    }
}

/// The encoding of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Apache Parquet.
    Parquet,
    /// An Arrow IPC stream (`save_to_disk`'s `.arrow` files) or IPC file.
    ArrowStream,
}

/// One table file of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Where it is.
    pub path: PathBuf,
    /// How `index.tsv` names it (relative to the dataset directory, or as the pattern matched).
    pub rel: String,
    /// Its encoding.
    pub kind: TableKind,
}

impl TableFile {
    /// A file named by the user: its kind from its extension, or `None` when it is neither
    /// `.parquet` nor `.arrow`.
    pub fn from_path(path: &Path) -> Option<TableFile> {
        let kind = match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => TableKind::Parquet,
            "arrow" => TableKind::ArrowStream,
            _ => return None,
        };
        Some(TableFile {
            path: path.to_path_buf(),
            rel: path.display().to_string(),
            kind,
        })
    }
}

/// A Hugging Face dataset directory's tables: `save_to_disk`'s Arrow files (listed in
/// `state.json`) or a Hub snapshot's `*.parquet` / `data/**/*.parquet`, with the class names of
/// `dataset_info.json` when present. `None` when `dir` is neither (an ImageFolder).
pub fn hf_dataset_files(dir: &Path) -> Result<Option<(Vec<TableFile>, Option<serde_json::Value>)>> {
    if dir.join("dataset_dict.json").is_file() {
        let splits: Vec<String> = fs::read_dir(dir)
            .at(dir)?
            .flatten()
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        return Err(Error::Usage(format!(
            "{}: a DatasetDict saved with save_to_disk (splits: {}); give one split's directory, e.g. {}",
            dir.display(),
            splits.join(", "),
            dir.join(splits.first().map_or("train", String::as_str)).display()
        )));
    }
    let info = read_json(&dir.join("dataset_info.json"))?;
    let state = dir.join("state.json");
    if state.is_file() {
        let json = read_json(&state)?.unwrap_or_default();
        let files: Vec<TableFile> = json
            .get("_data_files")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("filename")?.as_str())
            .map(|name| TableFile {
                path: dir.join(name),
                rel: name.to_string(),
                kind: TableKind::ArrowStream,
            })
            .collect();
        if files.is_empty() {
            return Err(Error::format(
                &state,
                "lists no data files (_data_files); is this a save_to_disk directory?",
            ));
        }
        return Ok(Some((files, info)));
    }
    let mut files = Vec::new();
    for pattern in ["*.parquet", "data/*.parquet", "data/*/*.parquet"] {
        let full = format!(
            "{}/{pattern}",
            glob::Pattern::escape(&dir.to_string_lossy())
        );
        let paths =
            glob::glob(&full).map_err(|e| Error::Usage(format!("{}: {e}", dir.display())))?;
        for p in paths.flatten() {
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            files.push(TableFile {
                path: p,
                rel,
                kind: TableKind::Parquet,
            });
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut splits: Vec<String> = files.iter().map(|f| split_of(&f.rel)).collect();
    splits.sort();
    splits.dedup();
    if splits.len() > 1 {
        let example = files
            .iter()
            .find(|f| split_of(&f.rel) == "train")
            .unwrap_or(&files[0]);
        let folder = Path::new(&example.rel)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let split = split_of(&example.rel);
        let name = Path::new(&split)
            .file_name()
            .map_or(split.clone(), |n| n.to_string_lossy().into_owned());
        let pattern = if folder.ends_with(&split) && folder != "data" {
            format!("{}/{folder}/*.parquet", dir.display())
        } else {
            format!("{}/{folder}/{name}-*.parquet", dir.display())
        };
        return Err(Error::Usage(format!(
            "{}: holds the splits {}; build one at a time, e.g. '{pattern}'",
            dir.display(),
            splits.join(", "),
        )));
    }
    Ok(Some((files, info)))
}

/// The split a Hub parquet file belongs to: `train` for `data/train-00000-of-00004.parquet`, else
/// its folder (`plain_text/train/0000.parquet`).
fn split_of(rel: &str) -> String {
    let path = Path::new(rel);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('-') {
        Some((split, rest))
            if rest.contains("-of-") || rest.bytes().all(|b| b.is_ascii_digit()) =>
        {
            split.to_string()
        }
        _ => path
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::format(path, format!("not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The `ClassLabel` names of `column` in a `datasets` features object
/// (`{"label": {"names": [...], "_type": "ClassLabel"}}`).
fn class_label_names(features: &serde_json::Value, column: &str) -> Option<Vec<String>> {
    let feature = features.get(column)?;
    if feature.get("_type")?.as_str()? != "ClassLabel" {
        return None;
    }
    feature
        .get("names")?
        .as_array()?
        .iter()
        .map(|n| n.as_str().map(String::from))
        .collect()
}

/// The `ClassLabel` names of `column` in the `huggingface` metadata of a schema.
fn schema_class_names(schema: &Schema, column: &str) -> Option<Vec<String>> {
    let json: serde_json::Value =
        serde_json::from_str(schema.metadata().get("huggingface")?).ok()?;
    let features = json
        .get("info")
        .and_then(|i| i.get("features"))
        .or_else(|| json.get("features"))?;
    class_label_names(features, column)
}

/// Opens a table's schema (and, for parquet, its metadata).
fn open_schema(
    file: &TableFile,
) -> std::result::Result<(Arc<Schema>, Option<ArrowReaderMetadata>, u64), String> {
    let f = fs::File::open(&file.path).map_err(|e| format!("cannot open: {e}"))?;
    match file.kind {
        TableKind::Parquet => {
            let meta = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new())
                .map_err(|e| format!("not a readable parquet file: {e}"))?;
            let rows = meta.metadata().file_metadata().num_rows().max(0) as u64;
            Ok((meta.schema().clone(), Some(meta), rows))
        }
        TableKind::ArrowStream => {
            drop(f);
            let (schema, _) = open_arrow(&file.path)?;
            Ok((schema, None, 0))
        }
    }
}

/// The record batches of an Arrow IPC file: the stream format (`save_to_disk`, the `datasets`
/// cache) or the file format (magic `ARROW1`, what `pyarrow.ipc.new_file` writes).
type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>>;

fn open_arrow(path: &Path) -> std::result::Result<(Arc<Schema>, Batches), String> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut magic = [0u8; 6];
    let is_file_format = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
    let f = fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = BufReader::with_capacity(1 << 20, f);
    if is_file_format {
        let r = arrow_ipc::reader::FileReader::try_new(reader, None)
            .map_err(|e| format!("not a readable Arrow IPC file: {e}"))?;
        Ok((r.schema(), Box::new(r)))
    } else {
        let r = arrow_ipc::reader::StreamReader::try_new(reader, None)
            .map_err(|e| format!("not a readable Arrow IPC stream: {e}"))?;
        Ok((r.schema(), Box::new(r)))
    }
}

/// The column to use: `chosen`, else the first of `defaults` present.
fn pick_column(
    schema: &Schema,
    chosen: Option<&str>,
    defaults: &[&str],
    what: &str,
    file: &TableFile,
) -> Result<String> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let found = match chosen {
        Some(c) => names.contains(&c).then(|| c.to_string()),
        None => defaults
            .iter()
            .find(|d| names.contains(d))
            .map(|d| d.to_string()),
    };
    found.ok_or_else(|| {
        Error::Usage(format!(
            "{}: no {what} column {}; its columns are {}; name it with --{what}-column",
            file.path.display(),
            chosen.map_or_else(|| defaults.join(" or "), |c| format!("{c:?}")),
            names.join(", ")
        ))
    })
}

/// The inputs of the parquet / Arrow files `read` of the whole input `files` (a part of a build
/// reads a slice, a one-go build all): a stream of their rows read by a thread of its own. The
/// columns and the class names are the whole input's: from the first of `files` that opens (so a
/// part reads that file's schema, whichever part it is), or `info`, a `dataset_info.json`, for
/// its `ClassLabel` names. Every file of the input must exist.
pub fn discover_parquet(
    files: Vec<TableFile>,
    read: Range<usize>,
    info: Option<serde_json::Value>,
    opts: ParquetOptions,
) -> Result<Inputs> {
    if files.is_empty() {
        return Err(Error::Usage("no parquet files given".into()));
    }
    if let Some(missing) = files.iter().find(|f| !f.path.is_file()) {
        return Err(Error::Usage(format!(
            "{}: file does not exist; check the path or the pattern",
            missing.path.display()
        )));
    }
    // The columns and class names from the first file that opens; a file that does not open is
    // a reject of its own when its turn comes.
    let Some(schema) = files.iter().find_map(|f| open_schema(f).ok().map(|s| s.0)) else {
        let why = open_schema(&files[0]).err().unwrap_or_default();
        return Err(Error::Usage(format!(
            "{}: {why}; none of the {} files could be opened",
            files[0].path.display(),
            files.len()
        )));
    };
    let reading = files
        .get(read)
        .map(<[TableFile]>::to_vec)
        .unwrap_or_default();
    // The rows to read, when every file is parquet (its footer counts them); a file that does not
    // open is one reject.
    let mut len = Some(0u64);
    for f in &reading {
        len = match (open_schema(f), len) {
            (Ok((_, _, rows)), Some(l)) if f.kind == TableKind::Parquet => Some(l + rows),
            (Err(_), Some(l)) => Some(l + 1),
            _ => None,
        };
    }
    let image = pick_column(
        &schema,
        opts.image_column.as_deref(),
        &IMAGE_COLUMNS,
        "image",
        &files[0],
    )?;
    let label = pick_column(
        &schema,
        opts.label_column.as_deref(),
        &LABEL_COLUMNS,
        "label",
        &files[0],
    )?;
    check_image_type(&schema, &image, &files[0])?;
    check_label_type(&schema, &label, &files[0])?;
    let names = match &opts.class_names {
        Some(p) => Some(read_class_names(p)?),
        None => schema_class_names(&schema, &label).or_else(|| {
            info.as_ref()
                .and_then(|i| i.get("features"))
                .and_then(|f| class_label_names(f, &label))
        }),
    };
    let columns = Columns {
        image,
        label,
        max_bytes: opts.max_bytes,
    };
    let (tx, rx) = crossbeam_channel::bounded(READ_AHEAD);
    std::thread::Builder::new()
        .name("alexpipe-parquet".into())
        .spawn(move || {
            for file in &reading {
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_table(file, &columns, &mut |s| tx.send(s).is_ok())
                }));
                let go_on = match read {
                    Ok(go_on) => go_on,
                    Err(_) => tx
                        .send(Source::refused(
                            file.path.clone(),
                            PathBuf::from(&file.rel),
                            RejectReason::DecoderPanic(
                                "the table reader crashed on this file (a bug: please report it); its remaining rows were not read".into(),
                            ),
                        ))
                        .is_ok(),
                };
                if !go_on {
                    return;
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the parquet reader thread: {e}")))?;
    Ok(Inputs {
        classes_from_labels: names.is_none(),
        classes: names.unwrap_or_default(),
        len,
        sources: Box::new(rx.into_iter()),
    })
}

fn check_image_type(schema: &Schema, column: &str, file: &TableFile) -> Result<()> {
    let Ok(field) = schema.field_with_name(column) else {
        return Ok(());
    };
    let ok = match field.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(fields) => fields.iter().any(|f| f.name() == "bytes"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{}: column {column:?} is {}, not images; expected binary or the datasets Image struct {{bytes, path}} (name the image column with --image-column)",
            file.path.display(),
            field.data_type()
        )))
    }
}

fn check_label_type(schema: &Schema, column: &str, file: &TableFile) -> Result<()> {
    let Ok(field) = schema.field_with_name(column) else {
        return Ok(());
    };
    if field.data_type().is_integer() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{}: label column {column:?} is {}, not integers (class indices); name the label column with --label-column",
            file.path.display(),
            field.data_type()
        )))
    }
}

/// The columns read.
struct Columns {
    image: String,
    label: String,
    max_bytes: u64,
}

/// Reads one table, calling `emit` with each row's source in order; false when the build stopped.
fn read_table(file: &TableFile, columns: &Columns, emit: &mut dyn FnMut(Source) -> bool) -> bool {
    let whole_file = |why: String| {
        Source::refused(
            file.path.clone(),
            PathBuf::from(&file.rel),
            RejectReason::Corrupt(why),
        )
    };
    let (schema, meta, _) = match open_schema(file) {
        Ok(s) => s,
        Err(why) => return emit(whole_file(why)),
    };
    if schema.field_with_name(&columns.image).is_err()
        || schema.field_with_name(&columns.label).is_err()
    {
        return emit(whole_file(format!(
            "has no column {:?} or {:?} (the first file has them)",
            columns.image, columns.label
        )));
    }
    match (file.kind, meta) {
        (TableKind::Parquet, Some(meta)) => read_parquet(file, meta, columns, emit),
        _ => read_arrow(file, columns, emit),
    }
}

fn read_parquet(
    file: &TableFile,
    meta: ArrowReaderMetadata,
    columns: &Columns,
    emit: &mut dyn FnMut(Source) -> bool,
) -> bool {
    let roots: Vec<usize> = meta
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| *f.name() == columns.image || *f.name() == columns.label)
        .map(|(i, _)| i)
        .collect();
    let mut first_row = 0u64;
    for rg in 0..meta.metadata().num_row_groups() {
        let rows = meta.metadata().row_group(rg).num_rows().max(0) as u64;
        let end = first_row + rows;
        let mut next = first_row;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || -> std::result::Result<bool, String> {
                let f = fs::File::open(&file.path).map_err(|e| format!("cannot open: {e}"))?;
                let mask = ProjectionMask::roots(meta.parquet_schema(), roots.iter().copied());
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
                    .with_row_groups(vec![rg])
                    .with_projection(mask)
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| e.to_string())?;
                for batch in reader {
                    let batch = batch.map_err(|e| e.to_string())?;
                    if !emit_batch(file, &batch, next, columns, emit) {
                        return Ok(false);
                    }
                    next += batch.num_rows() as u64;
                }
                Ok(true)
            },
        ));
        let why = match read {
            Ok(Ok(true)) if next == end => None,
            Ok(Ok(true)) => Some(format!(
                "it ended after {} of its {rows} rows",
                next - first_row
            )),
            Ok(Ok(false)) => return false,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the parquet reader crashed on it".into()),
        };
        if let Some(why) = why {
            // Every row of the group not yet read is a reject of its own: nothing is lost.
            for row in next..end {
                let name = format!("{}:row {row}", file.rel);
                let reason = RejectReason::Corrupt(format!(
                    "row group {rg} (rows {first_row}..{end}) cannot be read: {why}"
                ));
                if !emit(Source::refused(
                    file.path.join(format!("row {row}")),
                    PathBuf::from(name),
                    reason,
                )) {
                    return false;
                }
            }
        }
        first_row = end;
    }
    true
}

fn read_arrow(file: &TableFile, columns: &Columns, emit: &mut dyn FnMut(Source) -> bool) -> bool {
    let mut next = 0u64;
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> std::result::Result<bool, String> {
            let (_, batches) = open_arrow(&file.path)?;
            for batch in batches {
                let batch = batch.map_err(|e| e.to_string())?;
                // Arrow batches may be large (save_to_disk writes up to 1000 rows): slices of them.
                let mut offset = 0;
                while offset < batch.num_rows() {
                    let n = BATCH_ROWS.min(batch.num_rows() - offset);
                    if !emit_batch(file, &batch.slice(offset, n), next, columns, emit) {
                        return Ok(false);
                    }
                    offset += n;
                    next += n as u64;
                }
            }
            Ok(true)
        },
    ));
    let why = match read {
        Ok(Ok(go_on)) => return go_on,
        Ok(Err(e)) => e,
        Err(_) => "the Arrow reader crashed on it".into(),
    };
    // A stream has no index of its rows: the damage is one reject naming where it is.
    emit(Source::refused(
        file.path.clone(),
        PathBuf::from(format!("{}:row {next}", file.rel)),
        RejectReason::Corrupt(format!(
            "the Arrow stream is damaged from row {next} on: {why}; the rows before it are kept"
        )),
    ))
}

/// The rows of one batch as sources; false when the build stopped.
fn emit_batch(
    file: &TableFile,
    batch: &RecordBatch,
    first_row: u64,
    columns: &Columns,
    emit: &mut dyn FnMut(Source) -> bool,
) -> bool {
    let (Some(images), Some(labels)) = (
        batch.column_by_name(&columns.image),
        batch.column_by_name(&columns.label),
    ) else {
        return true; // checked when the file was opened
    };
    for i in 0..batch.num_rows() {
        let row = first_row + i as u64;
        let name = format!("{}:row {row}", file.rel);
        let base = file.path.parent().unwrap_or(Path::new("."));
        let image = image_at(images.as_ref(), i, columns.max_bytes, base);
        let label = label_at(labels.as_ref(), i);
        let source = match (image, label) {
            (Err(reason), _) => Source::refused(PathBuf::from(&name), PathBuf::from(&name), reason),
            (Ok(_), Err(why)) => Source::refused(
                PathBuf::from(&name),
                PathBuf::from(&name),
                RejectReason::NoLabel(format!("column {:?}: {why}", columns.label)),
            ),
            (Ok(Cell::Bytes(bytes)), Ok(label)) => Source {
                path: PathBuf::from(&name),
                rel: PathBuf::from(&name),
                label: Some(label),
                refused: None,
                bytes: Some(bytes),
            },
            (Ok(Cell::File(path)), Ok(label)) => {
                Source::file(path, PathBuf::from(&name), Some(label))
            }
        };
        if !emit(source) {
            return false;
        }
    }
    true
}

/// The bytes of a binary cell.
fn binary_at(array: &dyn Array, i: usize) -> Option<Option<&[u8]>> {
    if let Some(a) = array.as_binary_opt::<i32>() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    if let Some(a) = array.as_binary_opt::<i64>() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    if let Some(a) = array.as_binary_view_opt() {
        return Some(a.is_valid(i).then(|| a.value(i)));
    }
    None
}

/// Where a row's image is.
enum Cell {
    /// In the cell.
    Bytes(Vec<u8>),
    /// In a local file the cell names (`datasets` keeps local images by path until embedded);
    /// the build reads it as it reads a folder's files.
    File(PathBuf),
}

/// The image of row `i` of an `Image` struct or binary column; a relative path in a path-only
/// cell is taken relative to `base`, the table file's directory.
fn image_at(
    array: &dyn Array,
    i: usize,
    max_bytes: u64,
    base: &Path,
) -> std::result::Result<Cell, RejectReason> {
    let bytes = if let Some(s) = array.as_struct_opt() {
        let bytes = s
            .column_by_name("bytes")
            .and_then(|b| binary_at(b.as_ref(), i))
            .flatten()
            .filter(|_| s.is_valid(i));
        match bytes {
            Some(b) => b,
            None => {
                let path = s.column_by_name("path").and_then(|p| {
                    if let Some(p) = p.as_string_opt::<i32>() {
                        return p.is_valid(i).then(|| p.value(i).to_string());
                    }
                    let p = p.as_string_opt::<i64>()?;
                    p.is_valid(i).then(|| p.value(i).to_string())
                });
                return match path {
                    Some(p) if s.is_valid(i) => {
                        let file = base.join(&p); // an absolute `p` stays as it is
                        if file.is_file() {
                            Ok(Cell::File(file))
                        } else {
                            Err(RejectReason::NoImage(format!(
                                "the image cell holds only a path ({p:?}), no bytes, and {} is not a file here; embed the images where they were made (datasets: save_to_disk, push_to_hub or embed_table_storage) or build from the image files",
                                file.display()
                            )))
                        }
                    }
                    _ => Err(RejectReason::NoImage("the image cell is null".into())),
                };
            }
        }
    } else {
        match binary_at(array, i) {
            Some(Some(b)) => b,
            _ => return Err(RejectReason::NoImage("the image cell is null".into())),
        }
    };
    if bytes.len() as u64 > max_bytes {
        return Err(RejectReason::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    Ok(Cell::Bytes(bytes.to_vec()))
}

/// The label of row `i` of an integer column.
fn label_at(array: &dyn Array, i: usize) -> std::result::Result<u32, String> {
    if array.is_null(i) {
        return Err("the label is null".into());
    }
    let value: i128 = match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        other => {
            return Err(format!(
                "{other} is not an integer label type; name the label column with --label-column"
            ))
        }
    };
    u32::try_from(value).map_err(|_| {
        if value < 0 {
            format!("label {value} (ClassLabel's -1 means no label)")
        } else {
            format!("label {value} is too large")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_file_names_give_their_split() {
        assert_eq!(split_of("data/train-00000-of-00004.parquet"), "train");
        assert_eq!(split_of("data/test-00000-of-00001.parquet"), "test");
        assert_eq!(split_of("train-00000.parquet"), "train");
        assert_eq!(
            split_of("plain_text/train/0000.parquet"),
            "plain_text/train"
        );
    }

    /// A parquet file of `datasets`' Image struct and an int64 label, row groups of 2 rows.
    fn write_table(path: &Path) -> Result<()> {
        use arrow_array::{ArrayRef, BinaryArray, Int64Array, StringArray, StructArray};
        use arrow_schema::Field;
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&b"\xff\xd8\xffjpeg"[..]),
            None,
            None,
            Some(&b"\xff\xd8\xffjpeg"[..]),
            Some(&b"\xff\xd8\xffjpeg"[..]),
        ]));
        let paths: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a.jpg"),
            None,
            Some("missing.jpg"),
            Some("d.jpg"),
            Some("e.jpg"),
        ]));
        let image = StructArray::from(vec![
            (Arc::new(Field::new("bytes", DataType::Binary, true)), bytes),
            (Arc::new(Field::new("path", DataType::Utf8, true)), paths),
        ]);
        let label: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(0),
            Some(0),
            None,
            Some(-1),
        ]));
        let hf = r#"{"info": {"features": {"image": {"_type": "Image"}, "label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}}}"#;
        let schema = Schema::new_with_metadata(
            vec![
                Field::new("image", image.data_type().clone(), true),
                Field::new("label", DataType::Int64, true),
            ],
            std::collections::HashMap::from([("huggingface".to_string(), hf.to_string())]),
        );
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(image), label])
            .map_err(|e| Error::Internal(e.to_string()))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let file = fs::File::create(path).at(path)?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(|e| Error::Internal(e.to_string()))?;
        w.write(&batch)
            .map_err(|e| Error::Internal(e.to_string()))?;
        w.close().map_err(|e| Error::Internal(e.to_string()))?;
        Ok(())
    }

    #[test]
    fn rows_become_named_sources_and_bad_cells_rejects() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("t.parquet");
        write_table(&path)?;
        let file = TableFile::from_path(&path).ok_or_else(|| Error::Internal("kind".into()))?;
        let inputs = discover_parquet(vec![file], 0..1, None, ParquetOptions::default())?;
        assert_eq!(inputs.classes, vec!["cat", "dog"]);
        assert!(!inputs.classes_from_labels);
        assert_eq!(inputs.len, Some(5));
        let got: Vec<(String, Option<u32>, Option<&'static str>, bool)> = inputs
            .sources
            .map(|s| {
                let rel = s.rel.to_string_lossy().into_owned();
                let row = rel.rsplit(':').next().unwrap_or_default().to_string();
                (
                    row,
                    s.label,
                    s.refused.as_ref().map(|r| r.kind()),
                    s.bytes.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("row 0".into(), Some(1), None, true),
                ("row 1".into(), None, Some("no-image"), false),
                ("row 2".into(), None, Some("no-image"), false),
                ("row 3".into(), None, Some("no-label"), false),
                ("row 4".into(), None, Some("no-label"), false),
            ]
        );
        Ok(())
    }

    #[test]
    fn class_label_names_come_from_the_huggingface_metadata() {
        let json = r#"{"info": {"features": {"image": {"_type": "Image"},
            "label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}}}"#;
        let mut meta = std::collections::HashMap::new();
        meta.insert("huggingface".to_string(), json.to_string());
        let schema = Schema::new_with_metadata(Vec::<arrow_schema::Field>::new(), meta);
        assert_eq!(
            schema_class_names(&schema, "label"),
            Some(vec!["cat".to_string(), "dog".to_string()])
        );
        assert_eq!(schema_class_names(&schema, "image"), None);
    }
}
