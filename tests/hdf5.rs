//! HDF5 (`--features hdf5`): a build straight to HDF5 holds what the shard build holds; shards →
//! HDF5 → shards is byte-identical; files written by the `hdf5` crate itself in the three storage
//! layouts h5py users have (chunked per image, contiguous, gzip-compressed) open with custom keys,
//! give the shards' pixels, labels and statistics, and the loader's batches are bit-identical to
//! those from shards; truncated and mis-shaped files fail with an error naming the file and the fix.
#![cfg(feature = "hdf5")]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use alexpipe::hdf5::{hdf5_to_shards, shards_to_hdf5, ConvertOptions};
use alexpipe::{build, Dataset, H5Keys, Layout, Loader, LoaderConfig, Mode, OutputFormat};
use ndarray::{ArrayView1, ArrayView4};

const S: usize = 64;

use crate::common;
use crate::common::all_pixels as pixels;

fn build_as(out: &Path, format: OutputFormat) -> alexpipe::BuildSummary {
    let mut cfg = common::fixtures_config(out, S as u32, Mode::Raw, 7);
    cfg.threads = Some(2);
    cfg.format = format;
    build(&cfg, &|_| {}).expect("fixtures build")
}

fn labels(ds: &Dataset) -> Vec<u32> {
    (0..ds.len()).map(|i| ds.label(i).expect("label")).collect()
}

/// Every file of a directory, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

/// Writes `images`/`labels` of the shard dataset `ds` with the `hdf5` crate, as another tool would.
fn write_foreign(path: &Path, ds: &Dataset, layout: &str, image_key: &str, label_key: &str) {
    let n = ds.len();
    let flat: Vec<u8> = pixels(ds).concat();
    let labels: Vec<i32> = labels(ds).iter().map(|&l| l as i32).collect();
    let file = hdf5::File::create(path).expect("create");
    let view = ArrayView4::from_shape((n, S, S, 3), &flat[..]).expect("shape");
    let builder = file.new_dataset_builder();
    let builder = match layout {
        "contiguous" => builder,
        "chunked" => builder.chunk((1, S, S, 3)),
        "gzip" => builder.chunk((4, S, S, 3)).deflate(4),
        other => panic!("layout {other}"),
    };
    builder.with_data(view).create(image_key).expect("images");
    file.new_dataset_builder()
        .with_data(ArrayView1::from(&labels[..]))
        .create(label_key)
        .expect("labels");
}

#[test]
fn build_to_hdf5_matches_the_shard_build() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shards = build_as(&tmp.path().join("sh"), OutputFormat::Shards);
    let h5 = build_as(&tmp.path().join("d.h5"), OutputFormat::Hdf5);
    assert_eq!(h5.info.num_records, shards.info.num_records);
    assert_eq!(h5.info.rejected, 1);
    let a = Dataset::open(tmp.path().join("sh")).expect("shards");
    let b = Dataset::open(tmp.path().join("d.h5")).expect("hdf5");
    assert_eq!(
        (b.info().format.as_str(), a.info().format.as_str()),
        ("hdf5", "shards")
    );
    assert_eq!(b.size(), S as u32);
    assert_eq!(b.classes(), a.classes());
    assert_eq!(labels(&b), labels(&a));
    assert_eq!(pixels(&b), pixels(&a));
    assert_eq!(
        b.stats(),
        a.stats(),
        "statistics stored and read back exactly"
    );
    assert!(
        b.record_in_place(0).expect("rec").is_some(),
        "our files are read in place"
    );
    assert_eq!(b.verify().expect("verify"), 31);
}

#[test]
fn shards_to_hdf5_and_back_is_byte_identical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sh = tmp.path().join("sh");
    build_as(&sh, OutputFormat::Shards);
    let h5 = tmp.path().join("x.h5");
    let back = tmp.path().join("back");
    shards_to_hdf5(&sh, &h5, &|_| {}).expect("to hdf5");
    hdf5_to_shards(&h5, &back, &ConvertOptions::default(), &|_| {}).expect("to shards");
    let (a, b) = (files(&sh), files(&back));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs after shards → HDF5 → shards");
    }
    // And HDF5 → shards → HDF5 keeps every record, label, class name and statistic.
    let h5b = tmp.path().join("y.h5");
    shards_to_hdf5(&back, &h5b, &|_| {}).expect("again");
    let (x, y) = (
        Dataset::open(&h5).expect("x"),
        Dataset::open(&h5b).expect("y"),
    );
    assert_eq!(pixels(&x), pixels(&y));
    assert_eq!(labels(&x), labels(&y));
    assert_eq!(x.classes(), y.classes());
    assert_eq!(x.stats(), y.stats());
}

#[test]
fn a_built_hdf5_file_converts_to_the_shard_build() {
    let tmp = tempfile::tempdir().expect("tmp");
    build_as(&tmp.path().join("sh"), OutputFormat::Shards);
    build_as(&tmp.path().join("d.h5"), OutputFormat::Hdf5);
    let back = tmp.path().join("back");
    hdf5_to_shards(
        &tmp.path().join("d.h5"),
        &back,
        &ConvertOptions::default(),
        &|_| {},
    )
    .expect("convert");
    // Same shard size (7, recorded in the file), same sources in index.tsv, same rejects.
    for name in [
        "shard-00000.bin",
        "shard-00004.bin",
        "index.tsv",
        "rejects.tsv",
        "mean_image.npy",
    ] {
        let a = fs::read(tmp.path().join("sh").join(name)).expect("a");
        let b = fs::read(back.join(name)).expect("b");
        assert!(a == b, "{name} differs");
    }
}

fn batches(ds: Arc<Dataset>, layout: Layout, threads: usize) -> Vec<(Vec<u8>, Vec<i64>)> {
    let cfg = LoaderConfig {
        batch_size: 4,
        crop: 56,
        threads,
        layout,
        seed: 7,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(ds, cfg).expect("loader");
    loader
        .iter()
        .map(|b| {
            let b = b.expect("batch");
            let bytes = match layout {
                Layout::U8Nhwc => b.images_u8().expect("u8").to_vec(),
                Layout::F32Nchw => b
                    .images_f32()
                    .expect("f32")
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            };
            (bytes, b.labels().to_vec())
        })
        .collect()
}

#[test]
fn foreign_files_in_every_layout_read_like_the_shards() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sh = tmp.path().join("sh");
    build_as(&sh, OutputFormat::Shards);
    let shards = Arc::new(Dataset::open(&sh).expect("shards"));
    let want_u8 = batches(shards.clone(), Layout::U8Nhwc, 1);
    let want_f32 = batches(shards.clone(), Layout::F32Nchw, 2);
    let keys = H5Keys {
        images: "x".into(),
        labels: "y".into(),
    };
    for (layout, in_place) in [("chunked", true), ("contiguous", true), ("gzip", false)] {
        let path = tmp.path().join(format!("{layout}.h5"));
        write_foreign(&path, &shards, layout, "x", "y");
        let ds = Dataset::open_hdf5(&path, &keys).expect(layout);
        assert_eq!(
            ds.record_in_place(3).expect("rec").is_some(),
            in_place,
            "{layout}"
        );
        assert_eq!(pixels(&ds), pixels(&shards), "{layout}");
        assert_eq!(labels(&ds), labels(&shards), "{layout}");
        assert_eq!(
            ds.classes(),
            ["0", "1", "2", "3"],
            "class names default to the labels"
        );
        assert_eq!(
            ds.stats(),
            shards.stats(),
            "{layout}: statistics computed from the file equal the build's (exact sums)"
        );
        let ds = Arc::new(ds);
        assert!(
            batches(ds.clone(), Layout::U8Nhwc, 2) == want_u8,
            "{layout} u8"
        );
        assert!(batches(ds, Layout::F32Nchw, 1) == want_f32, "{layout} f32");
    }
}

fn err_text(r: alexpipe::Result<Dataset>) -> String {
    match r {
        Ok(_) => panic!("opened a bad file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_fail_clearly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sh = tmp.path().join("sh");
    build_as(&sh, OutputFormat::Shards);
    let shards = Dataset::open(&sh).expect("shards");
    let good = tmp.path().join("good.h5");
    write_foreign(&good, &shards, "chunked", "images", "labels");

    // Truncated: cut the file in half.
    let bytes = fs::read(&good).expect("read");
    let cut = tmp.path().join("cut.h5");
    fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let e = err_text(Dataset::open(&cut));
    assert!(e.contains("cut.h5") && e.contains("truncated"), "{e}");

    // Missing key: the error lists what the file has and names the option.
    let e = err_text(Dataset::open_hdf5(
        &good,
        &H5Keys {
            images: "pixels".into(),
            labels: "labels".into(),
        },
    ));
    assert!(
        e.contains("\"pixels\"") && e.contains("images") && e.contains("--images-key"),
        "{e}"
    );

    // Not square, not RGB, not uint8, labels of the wrong length.
    let write = |name: &str, shape: (usize, usize, usize, usize), float: bool, nlabels: usize| {
        let p = tmp.path().join(name);
        let f = hdf5::File::create(&p).expect("create");
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        if float {
            let v = vec![0f32; n];
            let a = ndarray::ArrayView4::from_shape(shape, &v[..]).expect("shape");
            f.new_dataset_builder()
                .with_data(a)
                .create("images")
                .expect("images");
        } else {
            let v = vec![0u8; n];
            let a = ndarray::ArrayView4::from_shape(shape, &v[..]).expect("shape");
            f.new_dataset_builder()
                .with_data(a)
                .create("images")
                .expect("images");
        }
        let l = vec![0i64; nlabels];
        f.new_dataset_builder()
            .with_data(ArrayView1::from(&l[..]))
            .create("labels")
            .expect("labels");
        p
    };
    for (name, shape, float, nl, needle) in [
        ("wide.h5", (2, 8, 9, 3), false, 2, "N×S×S×3"),
        ("gray.h5", (2, 8, 8, 1), false, 2, "N×S×S×3"),
        ("float.h5", (2, 8, 8, 3), true, 2, "uint8"),
        ("labels.h5", (2, 8, 8, 3), false, 3, "(2,)"),
    ] {
        let p = write(name, shape, float, nl);
        let e = err_text(Dataset::open(&p));
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
    }

    // Output over something that is not HDF5 is refused, and leaves it alone.
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "keep me").expect("write");
    let e = shards_to_hdf5(&sh, &text, &|_| {}).expect_err("refused");
    assert!(e.to_string().contains("not an HDF5 file"), "{e}");
    assert_eq!(fs::read_to_string(&text).expect("read"), "keep me");
}

#[test]
fn a_damaged_image_in_our_file_fails_its_checksum() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("d.h5");
    build_as(&path, OutputFormat::Hdf5);
    let want = pixels(&Dataset::open(&path).expect("open"))[5].clone();
    let mut bytes = fs::read(&path).expect("read");
    let at = bytes
        .windows(want.len())
        .position(|w| w == &want[..])
        .expect("image 5 is stored as is");
    bytes[at + 1000] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let ds = Dataset::open(&path).expect("the structure is intact");
    let e = ds.record_in_place(5).expect_err("checksum").to_string();
    assert!(
        e.contains("d.h5") && e.contains("image 5 fails its checksum"),
        "{e}"
    );
    assert!(ds.record_in_place(4).is_ok());
    assert!(ds.verify().is_err());
    let loader = Loader::new(
        Arc::new(ds),
        LoaderConfig {
            batch_size: 31,
            crop: 56,
            drop_last: false,
            ..LoaderConfig::default()
        },
    )
    .expect("loader");
    let e = loader
        .iter()
        .next()
        .expect("one batch")
        .expect_err("damaged");
    assert!(e.to_string().contains("checksum"), "{e}");
}
