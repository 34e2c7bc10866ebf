//! The trainer end to end on the fixtures (72 px shards, a small network, CPU): exact resume,
//! checkpoint evaluation, 10-crop averaging, Ctrl-C.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alexpipe::{Dataset, Layout, Loader, LoaderConfig, MeanMode};
use alexpipe_train::checkpoint::load_network;
use alexpipe_train::metrics::read_rows;
use alexpipe_train::pictures::curves;
use alexpipe_train::run_dir::{curves_png, last_checkpoint};
use alexpipe_train::train::evaluate_checkpoint;
use alexpipe_train::{run, ModelOptions, Recipe, RunConfig, TrainError, WeightInit};
use tch::{Device, Kind, Tensor};

use crate::common::{serial, small_dataset};

fn config(train: &Path, out: &Path) -> RunConfig {
    RunConfig {
        train: train.to_path_buf(),
        val: None,
        out: out.to_path_buf(),
        model: ModelOptions {
            width: 0.125,
            ..ModelOptions::default()
        },
        recipe: Recipe {
            epochs: 2,
            batch_size: 4,
            lr: 0.01,
            crop: 64,
            workers: 2,
            seed: 5,
            ..Recipe::default()
        },
        device: Device::Cpu,
        resume: None,
        progress: false,
    }
}

/// Every tensor of a checkpoint (weights and momentum), by name.
fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::load_multi(path)
        .expect("checkpoint readable")
        .into_iter()
        .filter(|(n, _)| n.starts_with("model/") || n.starts_with("velocity/"))
        .collect()
}

/// ‖a − b‖ / ‖b‖ over all the weights (`model/…`) of two checkpoints' tensors.
fn relative_change(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> f64 {
    let (mut diff, mut base) = (0.0, 0.0);
    for (name, t) in a.iter().filter(|(n, _)| n.starts_with("model/")) {
        let d = (t - &b[name]).square().sum(Kind::Double).double_value(&[]);
        diff += d;
        base += b[name].square().sum(Kind::Double).double_value(&[]);
    }
    (diff / base).sqrt()
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

/// The `train` command on the small dataset: ⅛ width, 64 crops, batches of 4 (7 steps an epoch).
fn train_command(data: &Path, out: &Path, epochs: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_train"));
    cmd.args([
        "--train",
        &data.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ])
    .args([
        "--crop",
        "64",
        "--width",
        "0.125",
        "--batch-size",
        "4",
        "--epochs",
        epochs,
    ])
    .args([
        "--seed",
        "5",
        "--workers",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]);
    cmd
}

/// `train` on the small dataset, as a user runs it: 2 epochs.
fn train_cli(data: &Path, out: &Path, extra: &[&str]) {
    let status = train_command(data, out, "2")
        .args(extra)
        // One compute thread: the same kernels and reduction order in every process.
        .env("OMP_NUM_THREADS", "1")
        .status()
        .expect("train runs");
    assert!(status.success(), "train {extra:?}: {status:?}");
}

/// A run stopped twice mid-epoch and resumed, each part in a new process (as after Ctrl-C), ends
/// with the same weights, momentum and metrics as a run that never stopped.
/// The run directory's curves.png is the picture of its metrics.jsonl, which has `epochs` rows.
fn assert_curves_show_the_metrics(run_dir: &Path, epochs: usize) {
    let rows = read_rows(&run_dir.join("metrics.jsonl")).expect("metrics");
    assert_eq!(rows.len(), epochs);
    let written = image::open(curves_png(run_dir))
        .expect("curves.png readable")
        .to_rgb8();
    let expected = curves::curves_image(&rows).expect("curves");
    assert_eq!(written.dimensions(), curves::SIZE);
    assert!(
        written == expected,
        "curves.png is not the picture of {epochs} epochs"
    );
}

#[test]
fn resume_mid_epoch_continues_exactly() {
    // The narrow network's recipe (He initialization on channel-normalised inputs): it moves from
    // the first steps, where the paper's N(0, 0.01) at ⅛ width would sit still and make any two
    // runs trivially equal.
    assert_resume_is_exact(&["--preset", "small"]);
}

/// The same with today's augmentation set on: timm's recipe (RandomResizedCrop with a random
/// filter per image, colour jitter, label smoothing) plus TrivialAugmentWide, random erasing, MixUp and CutMix with their soft
/// labels, and two views of each image: the batches, their mixing and the soft-target loss resume
/// exactly too. The checkpoint's engine position names the ops the flags asked for.
#[test]
fn resume_mid_epoch_continues_exactly_with_mixup_cutmix_and_erasing() {
    let flags = [
        "--preset",
        "small",
        "--recipe",
        "timm",
        "--trivial-augment",
        "--random-erasing",
        "0.25",
        "--mixup",
        "0.8",
        "--cutmix",
        "1.0",
        "--views",
        "2",
    ];
    let words = assert_resume_is_exact(&flags);
    for op in [
        "mixup=mixup_alpha=0.8,cutmix_alpha=1,prob=1,switch_prob=0.5,smoothing=0.1",
        "erasing=p=0.25,scale=0.02,0.33,ratio=0.3,3.3,fill=Constant([0.0, 0.0, 0.0])",
        "views=2",
        "interpolation=random",
        "trivial_augment_wide(bins=31) color_jitter(b=0.6,1.4 c=0.6,1.4 s=0.6,1.4 h=-)",
    ] {
        assert!(
            words.contains(op),
            "{op:?} not in the engine's recipe: {words}"
        );
    }
}

/// Trains `small` (flags of a 2-epoch run of 7 steps each) straight through and stopped twice
/// mid-epoch and resumed; asserts both end equal and that training moved the weights. Returns the
/// engine's recipe words from the first mid-epoch checkpoint.
fn assert_resume_is_exact(small: &[&str]) -> String {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let at_start = tmp.path().join("start");
    train_cli(&data, &at_start, &[small, &["--max-steps", "0"]].concat());
    let straight = tmp.path().join("straight");
    train_cli(&data, &straight, small);

    // 7 steps per epoch: stop inside epoch 1, resume, stop inside epoch 2, resume to the end.
    let split = tmp.path().join("split");
    train_cli(&data, &split, &[small, &["--max-steps", "3"]].concat());
    let ckpt = last_checkpoint(&split);
    let (_vs, _net, state, _) = load_network(&ckpt, Device::Cpu).expect("checkpoint loads");
    assert_eq!((state.epoch, state.step), (0, 3));
    let words = state.loader.expect("a mid-epoch engine position").recipe;
    assert!(!curves_png(&split).exists(), "no epoch finished, no curves");
    train_cli(
        &data,
        &split,
        &[small, &["--resume", "--max-steps", "6"]].concat(),
    );
    let (_vs, _net, state, _) = load_network(&ckpt, Device::Cpu).expect("checkpoint loads");
    assert_eq!((state.epoch, state.step), (1, 2));
    // The curves are redrawn at the end of every epoch: now they show epoch 1.
    assert_curves_show_the_metrics(&split, 1);
    train_cli(&data, &split, &[small, &["--resume"]].concat());
    assert_curves_show_the_metrics(&split, 2);

    let a = tensors(&last_checkpoint(&straight));
    let b = tensors(&ckpt);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(
        a.len() == 32,
        "16 weights and 16 momentum buffers, got {}",
        a.len()
    );
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    // The network did move from its step-0 weights (the same initialization in every run): the
    // runs are not trivially equal. Every tensor changed, and the weights as a whole by far more
    // than rounding.
    let start = tensors(&last_checkpoint(&at_start));
    let (_vs, _net, state, _) =
        load_network(&last_checkpoint(&at_start), Device::Cpu).expect("step-0 checkpoint");
    assert_eq!(
        (state.epoch, state.step),
        (0, 0),
        "a checkpoint before any step"
    );
    for (name, t) in start.iter().filter(|(n, _)| n.starts_with("model/")) {
        assert!(!t.equal(&a[name]), "{name} did not change in training");
    }
    let moved = relative_change(&a, &start);
    eprintln!("weights moved by {moved:.4} of their norm from step 0");
    assert!(
        moved > 0.05,
        "weights moved by only {moved:.4} of their norm"
    );

    // Both runs report the same per-epoch numbers (times aside).
    let rows = |dir: &Path| read_rows(&dir.join("metrics.jsonl")).expect("metrics");
    let (ra, rb) = (rows(&straight), rows(&split));
    assert_eq!(ra.len(), 2);
    assert_eq!(rb.len(), 2);
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.epoch, x.lr), (y.epoch, y.lr));
        assert_eq!(x.train_loss.to_bits(), y.train_loss.to_bits());
        assert_eq!(x.train_top1_err, y.train_top1_err);
        assert_eq!(x.val_top1_err, y.val_top1_err);
        assert_eq!(x.val_loss.to_bits(), y.val_loss.to_bits());
    }
    let csv = std::fs::read_to_string(split.join("metrics.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 3, "header and two epochs:\n{csv}");
    words
}

/// A run killed with SIGKILL mid-epoch (no chance to save) resumes from its last periodic
/// checkpoint (`--checkpoint-every`), where the engine starts at the saved position at once (the
/// checkpoint holds its `LoaderState`), and ends with the weights of a run never killed.
#[test]
fn a_run_killed_mid_epoch_resumes_exactly_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let small = ["--preset", "small", "--checkpoint-every", "2"];
    let killed = tmp.path().join("killed");
    let ckpt = last_checkpoint(&killed);
    let mut child = train_command(&data, &killed, "1000")
        .args(small)
        .env("OMP_NUM_THREADS", "1")
        .spawn()
        .expect("train starts");
    // Kill once a checkpoint from the middle of the second epoch or later is on disk.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "no mid-epoch checkpoint");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "train exited early"
        );
        if let Ok((_vs, _net, state, _)) = load_network(&ckpt, Device::Cpu) {
            if state.epoch >= 1 && state.step > 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // What the kill left: the last checkpoint written before it (renamed into place whole).
    let (_vs, _net, at, _) = load_network(&ckpt, Device::Cpu).expect("a usable checkpoint");
    match &at.loader {
        Some(position) => {
            assert_eq!(position.epoch, at.epoch);
            assert_eq!(position.consumed, at.step * 4, "4 images a step");
        }
        None => assert_eq!(at.step, 0, "an epoch's start carries no engine position"),
    }
    let steps_before = at.epoch * 7 + at.step;

    let resume = train_command(&data, &killed, "1000")
        .args(small)
        .args(["--resume", "--max-steps", "5"])
        .env("OMP_NUM_THREADS", "1")
        .status()
        .expect("train resumes");
    assert!(resume.success(), "{resume:?}");
    let straight = tmp.path().join("straight");
    let total = (steps_before + 5).to_string();
    let status = train_command(&data, &straight, "1000")
        .args(small)
        .args(["--max-steps", total.as_str()])
        .env("OMP_NUM_THREADS", "1")
        .status()
        .expect("train runs");
    assert!(status.success(), "{status:?}");

    let (_vs, _net, a_state, _) =
        load_network(&last_checkpoint(&straight), Device::Cpu).expect("ckpt");
    let (_vs, _net, b_state, _) = load_network(&ckpt, Device::Cpu).expect("ckpt");
    assert_eq!((a_state.epoch, a_state.step), (b_state.epoch, b_state.step));
    assert_eq!(a_state.loader, b_state.loader, "the same engine position");
    let (a, b) = (tensors(&last_checkpoint(&straight)), tensors(&ckpt));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after kill -9 and resume");
    }
}

/// The small dataset in `dir` and a finished one-epoch run on it (in this process).
fn one_epoch_run(dir: &Path) -> (std::path::PathBuf, RunConfig) {
    let data = small_dataset(dir);
    let mut cfg = config(&data, &dir.join("run"));
    cfg.recipe.epochs = 1;
    run(&cfg, &never()).expect("training");
    (data, cfg)
}

/// A learning rate far too high makes the loss non-finite: the run stops with `Diverged`, naming
/// where, and its message says what to do.
#[test]
fn a_diverging_loss_is_its_own_error() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let mut cfg = config(&data, &tmp.path().join("run"));
    cfg.model.init = WeightInit::Kaiming;
    cfg.recipe.lr = 1e30;
    match run(&cfg, &never()) {
        Err(e @ TrainError::Diverged { epoch, loss, .. }) => {
            assert!(epoch <= 2 && !loss.is_finite(), "{e}");
            assert!(e.to_string().contains("lower --lr"), "{e}");
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
}

/// Options no run can use are usage errors, before any data is read.
#[test]
fn impossible_options_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(&tmp.path().join("missing"), &tmp.path().join("run"));
    cfg.recipe.batch_size = 0;
    let err = run(&cfg, &never()).expect_err("batch of 0");
    assert!(matches!(err, TrainError::Usage(_)), "{err:?}");
    assert!(err.to_string().contains("--batch-size"), "{err}");
    // A missing dataset is a data error naming it.
    cfg.recipe.batch_size = 4;
    let err = run(&cfg, &never()).expect_err("no dataset");
    assert!(matches!(err, TrainError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn checkpoint_evaluation_matches_the_runs_validation() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (data, cfg) = one_epoch_run(tmp.path());
    let row = &read_rows(&cfg.out.join("metrics.jsonl")).expect("metrics")[0];
    let t = evaluate_checkpoint(
        &last_checkpoint(&cfg.out),
        &data,
        &cfg.recipe,
        Device::Cpu,
        false,
    )
    .expect("evaluation")
    .totals;
    assert_eq!(t.images, 31);
    assert!((t.top1_error() - row.val_top1_err).abs() < 1e-9);
    assert!(
        (t.loss() - row.val_loss).abs() < 1e-6,
        "{} vs {}",
        t.loss(),
        row.val_loss
    );
}

/// 10-crop evaluation against a plain loop: each patch through the network on its own, softmax,
/// average of the ten, then the rank of the label.
#[test]
fn ten_crop_averages_softmax_over_the_ten_patches() {
    let _turn = serial();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (data, cfg) = one_epoch_run(tmp.path());
    let ckpt = last_checkpoint(&cfg.out);
    let recipe = Recipe {
        ten_crop: true,
        ..cfg.recipe.clone()
    };
    let got = evaluate_checkpoint(&ckpt, &data, &recipe, Device::Cpu, false)
        .expect("10-crop")
        .totals;

    let (_vs, net, state, stats) = load_network(&ckpt, Device::Cpu).expect("checkpoint");
    let ds = Arc::new(Dataset::open_without_stats(&data).expect("dataset"));
    let loader_cfg = LoaderConfig {
        batch_size: 1,
        train: false,
        shuffle: false,
        drop_last: false,
        layout: Layout::F32Nchw,
        crop: 64,
        mean: MeanMode::Image,
        ten_crop: true,
        ..LoaderConfig::default()
    };
    let loader = Loader::with_stats(ds, loader_cfg, &stats).expect("loader");
    let classes = state.classes.len();
    let (mut top1, mut loss_sum, mut n) = (0u64, 0f64, 0u64);
    let _guard = tch::no_grad_guard();
    for batch in loader.iter() {
        let batch = batch.expect("batch");
        let pixels = batch.images_f32().expect("f32");
        let per = 3 * 64 * 64;
        let mut mean = vec![0f64; classes];
        for patch in pixels.chunks(per) {
            let x = Tensor::from_slice(patch).view([1, 3, 64, 64]);
            let p: Vec<f32> = net
                .forward_t(&x, false)
                .softmax(-1, Kind::Float)
                .view([-1])
                .try_into()
                .expect("probs");
            for (m, v) in mean.iter_mut().zip(p) {
                *m += f64::from(v) / 10.0;
            }
        }
        let label = batch.labels()[0] as usize;
        let best = (0..classes)
            .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
            .expect("classes");
        top1 += u64::from(best == label);
        loss_sum -= mean[label].ln();
        n += 1;
    }
    assert_eq!(got.images, n);
    assert_eq!(got.top1, top1);
    assert!(
        (got.loss() - loss_sum / n as f64).abs() < 1e-4,
        "{} vs {}",
        got.loss(),
        loss_sum / n as f64
    );
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let out = tmp.path().join("run");
    let mut child = train_command(&data, &out, "1000")
        .spawn()
        .expect("train starts");
    // Wait for the first epoch's row, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(600);
    while read_rows(&out.join("metrics.jsonl")).map_or(true, |r| r.is_empty()) {
        assert!(Instant::now() < deadline, "no epoch finished");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "train exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("train exits");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let ckpt = last_checkpoint(&out);
    let (_vs, _net, state, _) = load_network(&ckpt, Device::Cpu).expect("a usable checkpoint");
    assert!(state.epoch >= 1);
    assert!(!std::fs::read_dir(&out).expect("run dir").any(|e| e
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .contains("partial")));
}

/// `train --help` lists the paper's recipe under one heading and the narrow-network flags under
/// another.
#[test]
fn help_groups_the_papers_recipe_apart_from_the_narrow_network_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .arg("--help")
        .output()
        .expect("train --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let at = |s: &str| {
        help.find(s)
            .unwrap_or_else(|| panic!("`{s}` missing from --help:\n{help}"))
    };
    let (paper, narrow) = (at("The paper's recipe"), at("Narrow networks"));
    assert!(paper < narrow, "{help}");
    for flag in [
        "--epochs <",
        "--batch-size <",
        "--lr <",
        "--momentum <",
        "--weight-decay <",
        "--patience <",
        "--lr-drop-after <",
        "--max-lr-drops <",
        "--crop <",
        "--dropout <",
        "--lighting <",
        "--ten-crop",
    ] {
        let i = at(flag);
        assert!(
            paper < i && i < narrow,
            "{flag} is not under the paper's recipe:\n{help}"
        );
    }
    for flag in ["--width <", "--init <", "--bias-init <", "--normalize <"] {
        assert!(
            at(flag) > narrow,
            "{flag} is not under narrow networks:\n{help}"
        );
    }
    assert!(at("--preset <") < paper, "--preset is a general option");
}

/// Today's augmentation flags that cannot work together say why and what to do, before any data
/// is read.
#[test]
fn augmentation_flags_that_cannot_work_say_what_to_do() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let missing = tmp.path().join("no-dataset");
    let refused = |flags: &[&str], fix: &str| {
        let out = train_command(&missing, &tmp.path().join("run"), "1")
            .args(flags)
            .output()
            .expect("train runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(fix), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    // The ops belong to RandomResizedCrop, not to the paper's patches of the stored images.
    refused(&["--mixup", "0.8"], "add --recipe rrc");
    refused(&["--color-jitter", "0.4"], "add --recipe rrc");
    refused(&["--interpolation", "bicubic"], "add --recipe rrc");
    // Label smoothing (timm's preset), MixUp and erasing work on the finished f32 batches.
    refused(&["--recipe", "timm", "--upload", "u8"], "use --upload f32");
    refused(
        &[
            "--recipe",
            "rrc",
            "--random-erasing",
            "0.25",
            "--upload",
            "u8",
        ],
        "use --upload f32",
    );
    refused(
        &["--recipe", "rrc", "--color-jitter", "0.4,0.4"],
        "one value or B,C,S[,H]",
    );
    refused(
        &["--recipe", "rrc", "--erasing-mode", "pixel"],
        "--random-erasing P",
    );
    refused(&["--recipe", "rrc", "--mixup=-1"], "give values ≥ 0");
}

/// conv1's initial σ shapes only the start: a run begun with another `--conv1-std` (as runs of the
/// small preset before it set 0.01 were, with He's σ) resumes under the preset's, and the resumed
/// run keeps the network its checkpoint names.
#[test]
fn a_run_resumes_under_another_conv1_start() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = small_dataset(tmp.path());
    let run_dir = tmp.path().join("run");
    let small = ["--preset", "small"];
    train_cli(
        &data,
        &run_dir,
        &[&small[..], &["--conv1-std", "0.05", "--max-steps", "3"]].concat(),
    );
    train_cli(&data, &run_dir, &[&small[..], &["--resume"]].concat());
    let (_vs, _net, state, _) =
        load_network(&last_checkpoint(&run_dir), Device::Cpu).expect("checkpoint loads");
    assert_eq!(
        (state.epoch, state.step),
        (2, 0),
        "the resumed run finished"
    );
    assert_eq!(
        state.model.conv1_std,
        Some(0.05),
        "the checkpoint's own network"
    );
}
