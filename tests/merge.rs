//! A build cut into parts (`--part K/N`) and merged against the same build in one go: every file
//! byte-identical (the manifest after its `created_unix`), statistics identical; and the merges that
//! must be refused (a missing part, a part of another input or other options, a part given twice).

use crate::common;

use std::path::{Path, PathBuf};

use alexpipe::part::PartSpec;
use alexpipe::shards::{merge_parts, MergeSummary};
use alexpipe::{build, BuildConfig, Dataset, Error, Mode};

fn config(input: &Path, out: &Path, mode: Mode, shard_size: u64) -> BuildConfig {
    let mut cfg = BuildConfig::new(input, out);
    cfg.size = 48;
    cfg.mode = mode;
    cfg.shard_size = shard_size;
    cfg.threads = Some(2);
    cfg
}

/// Builds the `count` parts of `cfg` into `dir/part-K`, in reverse order (the merge must not care).
fn build_parts(cfg: &BuildConfig, dir: &Path, count: u32) -> Vec<PathBuf> {
    let mut parts = Vec::new();
    for index in (1..=count).rev() {
        let mut part = cfg.clone();
        part.out = dir.join(format!("part-{index}-of-{count}"));
        part.part = Some(PartSpec { index, count });
        build(&part, &|_| {}).unwrap_or_else(|e| panic!("part {index}/{count}: {e}"));
        parts.push(part.out);
    }
    parts
}

/// The manifest as JSON without what names its build (the time) and the checksum over it.
fn manifest_without_time(dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dir.join("manifest.json")).expect("manifest");
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    let obj = v.as_object_mut().expect("object");
    obj.remove("manifest_crc32c");
    obj.get_mut("build")
        .and_then(|b| b.as_object_mut())
        .and_then(|b| b.remove("created_unix"))
        .expect("created_unix");
    v
}

/// Every file of `merged` is byte-identical to `one_go`'s, the manifest after its time.
fn assert_same_dataset(merged: &Path, one_go: &Path) {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("dataset dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(merged), names(one_go), "the same files");
    for name in names(one_go) {
        if name == "manifest.json" {
            assert_eq!(manifest_without_time(merged), manifest_without_time(one_go));
        } else {
            let (a, b) = (
                std::fs::read(merged.join(&name)).expect("merged file"),
                std::fs::read(one_go.join(&name)).expect("one-go file"),
            );
            assert!(
                a == b,
                "{name} differs between the merge and the one-go build"
            );
        }
    }
    let (a, b) = (
        Dataset::open(merged).expect("merged opens"),
        Dataset::open(one_go).expect("one-go opens"),
    );
    assert_eq!(a.stats(), b.stats(), "statistics bit-identical");
    assert_eq!(a.verify().expect("merged verifies"), b.len() as u64);
}

fn merge(parts: &[PathBuf], out: &Path) -> alexpipe::Result<MergeSummary> {
    merge_parts(parts, out, &|_| {})
}

#[test]
fn parts_one_to_five_of_the_fixtures_merge_into_the_one_go_build() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 32 inputs, one a broken JPEG: shards of 4 put the reject inside a part (re-packing what
    // follows); shards of 16 leave parts 3..5 of five empty.
    for (mode, shard_size) in [(Mode::Raw, 4), (Mode::Jpeg, 16), (Mode::Original, 3)] {
        let one_go = tmp.path().join(format!("one-go-{mode}"));
        let cfg = config(&common::fixtures(), &one_go, mode, shard_size);
        let summary = build(&cfg, &|_| {}).expect("one-go build");
        assert_eq!(
            summary.rejects.len(),
            1,
            "the fixtures hold one broken JPEG"
        );
        for count in 1..=5 {
            let dir = tmp.path().join(format!("{mode}-{count}"));
            let parts = build_parts(&cfg, &dir, count);
            let merged = dir.join("merged");
            let summary = merge(&parts, &merged).expect("merge");
            assert_eq!(summary.parts, count as usize);
            assert_same_dataset(&merged, &one_go);
        }
    }
}

#[test]
fn a_list_file_input_merges_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let list = common::fixtures()
        .parent()
        .expect("fixtures")
        .join("train.txt");
    let mut cfg = config(&list, &tmp.path().join("one-go"), Mode::Raw, 5);
    cfg.root = Some(common::fixtures());
    build(&cfg, &|_| {}).expect("one-go build");
    let parts = build_parts(&cfg, tmp.path(), 3);
    merge(&parts, &tmp.path().join("merged")).expect("merge");
    assert_same_dataset(&tmp.path().join("merged"), &cfg.out);
}

#[test]
fn without_rejects_whole_shards_are_linked_or_copied_never_repacked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let val = common::fixtures().parent().expect("fixtures").join("val");
    let cfg = config(&val, &tmp.path().join("one-go"), Mode::Raw, 2);
    let one_go = build(&cfg, &|_| {}).expect("one-go build");
    assert!(one_go.rejects.is_empty());
    let parts = build_parts(&cfg, tmp.path(), 4);
    let summary = merge(&parts, &tmp.path().join("merged")).expect("merge");
    assert_eq!(summary.repacked, 0, "every part starts on a shard boundary");
    assert_eq!(summary.linked, 2, "part 1's two shards keep their indices");
    assert_eq!(
        summary.linked + summary.copied,
        one_go.info.num_records as usize / 2
    );
    assert_same_dataset(&tmp.path().join("merged"), &cfg.out);
}

fn usage_message(result: alexpipe::Result<MergeSummary>) -> String {
    match result {
        Err(Error::Usage(msg)) => msg,
        Err(e) => panic!("expected a usage error, got {e}"),
        Ok(_) => panic!("the merge was expected to be refused"),
    }
}

#[test]
fn merges_of_the_wrong_parts_are_refused_naming_the_part() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &common::fixtures(),
        &tmp.path().join("unused"),
        Mode::Raw,
        4,
    );
    let parts = build_parts(&cfg, &tmp.path().join("a"), 3); // parts 3, 2, 1
    let out = tmp.path().join("merged");

    let msg = usage_message(merge(&parts[..2], &out));
    assert!(msg.contains("part 1/3 is missing"), "{msg}");

    let twice = vec![
        parts[0].clone(),
        parts[1].clone(),
        parts[2].clone(),
        parts[1].clone(),
    ];
    let msg = usage_message(merge(&twice, &out));
    assert!(
        msg.contains("are both part 2/3") && msg.contains(&*parts[1].to_string_lossy()),
        "{msg}"
    );

    let val = common::fixtures().parent().expect("fixtures").join("val");
    let mut other = config(&val, &tmp.path().join("b/part-2"), Mode::Raw, 4);
    other.part = Some(PartSpec { index: 2, count: 3 });
    build(&other, &|_| {}).expect("a part of another input");
    let mixed = vec![parts[0].clone(), other.out.clone(), parts[2].clone()];
    let msg = usage_message(merge(&mixed, &out));
    assert!(
        msg.contains(&*other.out.to_string_lossy()) && msg.contains("its input is"),
        "{msg}"
    );

    let mut options = cfg.clone();
    options.quality = 80;
    options.mode = Mode::Jpeg;
    options.out = tmp.path().join("c/part-2");
    options.part = Some(PartSpec { index: 2, count: 3 });
    build(&options, &|_| {}).expect("a part with other options");
    let mixed = vec![parts[0].clone(), options.out.clone(), parts[2].clone()];
    let msg = usage_message(merge(&mixed, &out));
    assert!(
        msg.contains(&*options.out.to_string_lossy()) && msg.contains("other options"),
        "{msg}"
    );

    let whole = tmp.path().join("whole");
    build(&config(&common::fixtures(), &whole, Mode::Raw, 4), &|_| {}).expect("a whole build");
    let msg = usage_message(merge(&[whole.clone(), parts[0].clone()], &out));
    assert!(msg.contains("not a part of a build"), "{msg}");

    assert!(!out.exists(), "a refused merge leaves nothing at OUT");
}
