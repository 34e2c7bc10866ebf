//! The pictures (§6.1) through their commands: a checkpoint whose conv1 kernels are set by hand
//! shows them at their places in the grid; gallery images queried find themselves at distance
//! exactly 0, and the reported distances are fc7 distances computed independently.

use std::path::Path;
use std::process::Command;

use alexpipe::{Dataset, Layout, Loader, LoaderConfig, MeanMode};
use alexpipe_train::checkpoint::{self, load_network, TrainState};
use alexpipe_train::metrics::EpochTotals;
use alexpipe_train::pictures::neighbours::{
    neighbours_picture, sheet_size, tile_origin, NeighboursConfig, Queries,
};
use alexpipe_train::schedule::LrState;
use alexpipe_train::sgd::Sgd;
use alexpipe_train::{AlexNet, AlexNetConfig, BiasInit, WeightInit};
use image::{Rgb, RgbImage};
use tch::{nn, Device, Kind, Tensor};

use crate::common::{serial, small_dataset};

fn viz(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_alexpipe-viz"))
        .args(args)
        .output()
        .expect("alexpipe-viz runs");
    assert!(
        out.status.success(),
        "alexpipe-viz {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error line of a failing `alexpipe-viz` command.
fn viz_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_alexpipe-viz"))
        .args(args)
        .output()
        .expect("alexpipe-viz runs");
    assert!(!out.status.success(), "alexpipe-viz {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A full-width network (96 conv1 kernels) on 64-px inputs, its weights drawn as the paper's, then
/// `edit` applied to conv1's `[96, 3, 11, 11]` weights, saved as a checkpoint of `data`.
fn checkpoint_with(data: &Path, path: &Path, edit: impl FnOnce(&mut [f32])) {
    let ds = Dataset::open(data).expect("dataset");
    let stats = ds.stats().expect("stats").clone();
    let config = AlexNetConfig {
        classes: ds.classes().len() as i64,
        width: 1.0,
        input: 64,
        dropout: 0.5,
        init: WeightInit::Kaiming,
        conv1_std: None,
        bias_init: BiasInit::Caffe,
    };
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = AlexNet::new(&vs.root(), &config).expect("network");
    let mut w = Vec::<f32>::try_from(net.conv1_weight().flatten(0, -1)).expect("weights");
    assert_eq!(w.len(), 96 * 3 * 11 * 11);
    edit(&mut w);
    tch::no_grad(|| {
        net.conv1_weight()
            .shallow_clone()
            .copy_(&Tensor::from_slice(&w).view([96, 3, 11, 11]))
    });
    let state = TrainState {
        model: config,
        classes: ds.classes().to_vec(),
        normalize: MeanMode::Channel,
        seed: 0,
        epoch: 1,
        step: 0,
        schedule: LrState::new(0.01),
        partial: EpochTotals::default(),
        loader: None,
        loss_scale: None,
    };
    let sgd = Sgd::new(&vs, 0.9, 0.0005);
    checkpoint::save(path, &vs, &sgd, &stats, &state).expect("checkpoint written");
}

/// Weight index of kernel k, channel c, row r, column x.
fn at(k: usize, c: usize, r: usize, x: usize) -> usize {
    ((k * 3 + c) * 11 + r) * 11 + x
}

#[test]
fn filter_grid_shows_hand_set_kernels_at_their_places() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let ckpt = tmp.path().join("hand.ot");
    checkpoint_with(&data, &ckpt, |w| {
        // Kernel 0: a single red dot at row 2, column 3 on black.
        w[at(0, 0, 0, 0)..at(1, 0, 0, 0)].fill(0.0);
        w[at(0, 0, 2, 3)] = 1.0;
        // Kernel 47 (last of the first column): white but one blue-less (yellow) pixel at 10, 10.
        w[at(47, 0, 0, 0)..at(48, 0, 0, 0)].fill(0.0);
        w[at(47, 2, 10, 10)] = -1.0;
        // Kernel 50 (second column): green rising from left (0) to right (10).
        for r in 0..11 {
            for x in 0..11 {
                w[at(50, 0, r, x)] = 0.0;
                w[at(50, 1, r, x)] = x as f32;
                w[at(50, 2, r, x)] = 0.0;
            }
        }
        // Kernel 95 (the last): constant, shown grey.
        w[at(95, 0, 0, 0)..].fill(0.25);
    });
    let png = tmp.path().join("conv1.png");
    let said = viz(&[
        "filters",
        ckpt.to_str().expect("utf-8"),
        "-o",
        png.to_str().expect("utf-8"),
        "--scale",
        "3",
    ]);
    assert!(said.contains("96 conv1 kernels"), "{said}");
    let img = image::open(&png).expect("PNG").to_rgb8();
    // 8 rows of 12 kernels of 33 px with 2-px gaps and 6-px margins, in two groups of 4 rows,
    // each under a 16-px heading, 10 px apart.
    let group_h = 16 + 4 * 33 + 3 * 2;
    assert_eq!(
        img.dimensions(),
        (6 + 12 * 33 + 11 * 2 + 6, 6 + group_h + 10 + group_h + 6)
    );
    // Centre of kernel k's pixel (r, x) on screen.
    let screen = |k: usize, r: u32, x: u32| {
        let (g, within) = (k / 48, k % 48);
        let (row, col) = ((within / 12) as u32, (within % 12) as u32);
        let left = 6 + col * 35;
        let top = 6 + g as u32 * (group_h + 10) + 16 + row * 35;
        img.get_pixel(left + 3 * x + 1, top + 3 * r + 1)
    };
    for r in 0..11 {
        for x in 0..11 {
            let red_dot = if (r, x) == (2, 3) {
                [255, 0, 0]
            } else {
                [0, 0, 0]
            };
            assert_eq!(screen(0, r, x), &Rgb(red_dot), "kernel 0 at {r},{x}");
            let yellow = if (r, x) == (10, 10) {
                [255, 255, 0]
            } else {
                [255, 255, 255]
            };
            assert_eq!(screen(47, r, x), &Rgb(yellow), "kernel 47 at {r},{x}");
            let g = (x as f32 / 10.0 * 255.0).round() as u8;
            assert_eq!(screen(50, r, x), &Rgb([0, g, 0]), "kernel 50 at {r},{x}");
            assert_eq!(
                screen(95, r, x),
                &Rgb([128, 128, 128]),
                "kernel 95 at {r},{x}"
            );
        }
    }
    // Between the columns' blocks: background and the second heading only, no kernel pixels.
    let band = 6 + group_h..6 + group_h + 10 + 16;
    let kernel_free = band.clone().all(|y| {
        (0..img.width()).all(|x| {
            let p = img.get_pixel(x, y).0;
            p == [32, 32, 32] || p == [230, 230, 230]
        })
    });
    assert!(kernel_free, "rows {band:?} separate the two columns");
}

#[test]
fn gallery_images_find_themselves_at_distance_zero() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let ckpt = tmp.path().join("net.ot");
    checkpoint_with(&data, &ckpt, |_| {});
    let queries = vec![0, 7, 30];
    let cfg = NeighboursConfig {
        k: 4,
        queries: Queries::Indices(queries.clone()),
        // 31 images in batches of 8: the last one and the queries' are padded.
        batch_size: 8,
        workers: 2,
        thumb: 32,
        device: Device::Cpu,
        progress: false,
    };
    let found = neighbours_picture(&ckpt, &data, &data, &cfg).expect("neighbours");
    assert_eq!(found.queries, queries);
    for (&q, list) in queries.iter().zip(&found.neighbours) {
        assert_eq!(list.len(), 4);
        let me = list
            .iter()
            .find(|n| n.index == q)
            .expect("itself among its neighbours");
        assert_eq!(me.distance, 0.0, "query {q}");
        assert!(list.windows(2).all(|w| w[0].distance <= w[1].distance));
    }

    // The distances are Euclidean distances of fc7 features, each image through the network alone.
    let (_vs, net, _state, stats) = load_network(&ckpt, Device::Cpu).expect("checkpoint");
    let ds = std::sync::Arc::new(Dataset::open(&data).expect("dataset"));
    let eval = LoaderConfig {
        batch_size: 31,
        train: false,
        shuffle: false,
        drop_last: false,
        crop: 64,
        mean: MeanMode::Channel,
        layout: Layout::F32Nchw,
        ..LoaderConfig::default()
    };
    let loader = Loader::with_stats(ds, eval, &stats).expect("loader");
    let batch = loader.iter().next().expect("one batch").expect("batch");
    let inputs = Tensor::from_slice(batch.images_f32().expect("f32")).view([31, 3, 64, 64]);
    let fc7 = |i: usize| -> Vec<f64> {
        let x = inputs.narrow(0, i as i64, 1);
        let f = tch::no_grad(|| net.features_t(&x, false)).to_kind(Kind::Double);
        Vec::<f64>::try_from(f.flatten(0, -1)).expect("features")
    };
    let mut distinct = 0;
    for (&q, list) in queries.iter().zip(&found.neighbours) {
        let fq = fc7(q);
        for n in list {
            let fg = fc7(n.index);
            let d = fq
                .iter()
                .zip(&fg)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let tolerance = 1e-4 * fq.iter().map(|a| a * a).sum::<f64>().sqrt().max(1.0);
            assert!(
                (d - f64::from(n.distance)).abs() <= tolerance,
                "query {q} → {}: reported {}, recomputed {d}",
                n.index,
                n.distance
            );
            distinct += usize::from(d > 0.0);
        }
    }
    assert!(
        distinct >= 6,
        "the other neighbours are at positive distances"
    );

    // The k shown are the k nearest of all 31: every distance recomputed (f64, each image alone),
    // no image left out is nearer than the k-th nearest, none shown is farther (up to rounding,
    // so ties at the k-th distance may go either way).
    let features: Vec<Vec<f64>> = (0..31).map(&fc7).collect();
    for (&q, list) in queries.iter().zip(&found.neighbours) {
        let fq = &features[q];
        let tolerance = 1e-4 * fq.iter().map(|a| a * a).sum::<f64>().sqrt().max(1.0);
        let d: Vec<f64> = features
            .iter()
            .map(|fg| {
                fq.iter()
                    .zip(fg)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let mut sorted = d.clone();
        sorted.sort_by(f64::total_cmp);
        let kth = sorted[3];
        let shown: Vec<usize> = list.iter().map(|n| n.index).collect();
        let mut unique = shown.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4, "query {q}: {shown:?} repeats a record");
        for (i, &di) in d.iter().enumerate() {
            if shown.contains(&i) {
                assert!(
                    di <= kth + tolerance,
                    "query {q}: shows {i} at {di}, but the 4th nearest is at {kth}"
                );
            } else {
                assert!(
                    di >= kth - tolerance,
                    "query {q}: leaves out {i} at {di}, nearer than the 4th nearest at {kth}"
                );
            }
        }
    }

    // The sheet: 3 rows of query + 4 neighbours, and the first neighbour's picture (the query
    // itself) equals the query's.
    let (w, h) = found.image.dimensions();
    assert_eq!((w, h), sheet_size(3, 4, 32));
    assert_eq!(
        (w, h),
        (
            2 * 8 + 5 * 32 + 3 * 4 + 16,
            2 * 8 + 16 + 3 * (32 + 24) + 2 * 4
        )
    );
    let tile = |img: &RgbImage, r: usize, c: usize| {
        let (x, y) = tile_origin(r, c, 32);
        image::imageops::crop_imm(img, x, y, 32, 32).to_image()
    };
    for r in 0..3 {
        assert!(
            tile(&found.image, r, 0) == tile(&found.image, r, 1),
            "row {r}: nearest 1 is the query"
        );
    }

    // The command writes that sheet.
    let png = tmp.path().join("nb.png");
    let said = viz(&[
        "neighbours",
        ckpt.to_str().expect("utf-8"),
        "--query",
        data.to_str().expect("utf-8"),
        "--gallery",
        data.to_str().expect("utf-8"),
        "-k",
        "4",
        "--query-index",
        "0,7,30",
        "--thumb",
        "32",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--quiet",
        "-o",
        png.to_str().expect("utf-8"),
    ]);
    assert!(said.contains("query 7: "), "{said}");
    let written = image::open(&png).expect("PNG").to_rgb8();
    assert!(written == found.image, "the command drew the same sheet");
}

#[test]
fn curves_command_draws_a_run_directory() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).expect("dir");
    let msg = viz_fails(&["curves", run.to_str().expect("utf-8")]);
    assert!(msg.contains("metrics.jsonl"), "{msg}");
    let row = |epoch: u64, lr: f64, dropped: bool| {
        format!(
            "{{\"epoch\":{epoch},\"lr\":{lr},\"train_loss\":{},\"train_top1_err\":60.0,\
             \"train_top5_err\":20.0,\"val_loss\":1.5,\"val_top1_err\":50.0,\"val_top5_err\":10.0,\
             \"images_per_s\":100.0,\"data_wait_pct\":1.0,\"train_s\":1.0,\"val_s\":0.5,\
             \"lr_dropped\":{dropped}}}\n",
            3.0 - epoch as f64 * 0.3
        )
    };
    let jsonl = [
        row(1, 0.01, false),
        row(2, 0.01, true),
        row(3, 0.001, false),
    ]
    .concat();
    std::fs::write(run.join("metrics.jsonl"), jsonl).expect("write");
    let said = viz(&["curves", run.to_str().expect("utf-8")]);
    assert!(said.contains("3 epochs, 1 learning-rate drops"), "{said}");
    let img = image::open(run.join("curves.png")).expect("PNG").to_rgb8();
    assert_eq!(img.dimensions(), alexpipe_train::pictures::curves::SIZE);
}

#[test]
fn neighbours_errors_name_the_dataset_and_the_fix() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let ckpt = tmp.path().join("net.ot");
    checkpoint_with(&data, &ckpt, |_| {});
    // A gallery of 80-px images: the checkpoint's 72-px statistics do not fit it.
    let other = tmp.path().join("fixtures-80");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let mut build = alexpipe::BuildConfig::new(fixtures, &other);
    build.size = 80;
    alexpipe::build(&build, &|_| {}).expect("build");
    let cfg = NeighboursConfig {
        k: 2,
        queries: Queries::Spread(2),
        batch_size: 8,
        workers: 1,
        thumb: 16,
        device: Device::Cpu,
        progress: false,
    };
    let err = neighbours_picture(&ckpt, &data, &other, &cfg)
        .expect_err("sizes differ")
        .to_string();
    assert!(
        err.contains("fixtures-80") && err.contains("80×80"),
        "{err}"
    );
    let past_end = NeighboursConfig {
        queries: Queries::Indices(vec![2, 31]),
        ..cfg
    };
    let err = neighbours_picture(&ckpt, &data, &data, &past_end)
        .expect_err("no record 31")
        .to_string();
    assert!(err.contains("fixtures-72") && err.contains("31"), "{err}");
}

#[test]
fn bad_checkpoints_get_one_line_errors_naming_the_file() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let good = tmp.path().join("net.ot");
    checkpoint_with(&data, &good, |_| {});
    let missing = tmp.path().join("missing.ot");
    let foreign = tmp.path().join("notes.ot");
    std::fs::write(&foreign, "not a checkpoint").expect("write");
    let truncated = tmp.path().join("truncated.ot");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    for (path, says) in [
        (&missing, "No such file"),
        (&foreign, "not a libtorch archive"),
        (&truncated, "corrupted"),
    ] {
        let p = path.to_str().expect("utf-8");
        let msg = viz_fails(&["filters", p]);
        assert!(msg.contains(p) && msg.contains(says), "{msg}");
        assert_eq!(
            msg.trim_end().lines().count(),
            1,
            "one line, no C++ backtrace: {msg}"
        );
    }
}
