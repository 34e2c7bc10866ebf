//! A build cut into parts (`--part K/N`) and merged against the same build in one go: every file
//! byte-identical (the manifest after its `created_unix`), statistics identical, for an image
//! folder, a list file, WebDataset tars and parquet files (cut by whole files); and the merges that
//! must be refused (a missing part, a part of another input or other options, a part given twice,
//! parts of tars that differ between machines).

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

/// Builds the `count` parts of `cfg` into `dir/part-K-of-N`, in reverse order (the merge must not
/// care).
fn build_parts(cfg: &BuildConfig, dir: &Path, count: u32) -> Vec<PathBuf> {
    (1..=count)
        .rev()
        .map(|index| build_part(cfg, dir, index, count))
        .collect()
}

/// Part `index` of `count` of `cfg`, built into `dir/part-K-of-N`.
fn build_part(cfg: &BuildConfig, dir: &Path, index: u32, count: u32) -> PathBuf {
    let mut part = cfg.clone();
    part.out = dir.join(format!("part-{index}-of-{count}"));
    part.part = Some(PartSpec { index, count });
    build(&part, &|_| {}).unwrap_or_else(|e| panic!("part {index}/{count}: {e}"));
    part.out
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

/// The class names in a dataset's manifest.
fn classes_of(dir: &Path) -> Vec<String> {
    Dataset::open(dir).expect("dataset").classes().to_vec()
}

#[test]
fn webdataset_tars_are_cut_by_whole_tars_and_merge_into_the_one_go_build() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 32 samples in five tars of 7, 7, 7, 7, 4, without class names (the labels name them: class
    // 3 is only in the last tars, so the first parts know fewer classes); the first tar holds the
    // fixtures' broken JPEG and the third is cut short inside a member.
    let tars = common::fixtures_as_tars(&tmp.path().join("wds"), 7);
    assert_eq!(tars.len(), 5);
    let third = std::fs::read(&tars[2]).expect("tar");
    std::fs::write(&tars[2], &third[..third.len() / 2 / 512 * 512 + 300]).expect("cut tar");
    let input = tmp.path().join("wds/shard-*.tar");
    for (mode, shard_size) in [(Mode::Raw, 4), (Mode::Original, 3)] {
        let one_go = tmp.path().join(format!("one-go-{mode}"));
        let cfg = config(&input, &one_go, mode, shard_size);
        let summary = build(&cfg, &|_| {}).expect("one-go build");
        let kinds: Vec<&str> = summary.rejects.iter().map(|(_, r)| r.kind()).collect();
        assert!(
            kinds.len() == 2 && kinds.contains(&"corrupt"),
            "the broken JPEG and the cut tar: {kinds:?}"
        );
        assert_eq!(classes_of(&one_go), ["0", "1", "2", "3"]);
        // Seven parts of five tars: two are empty.
        for count in 1..=7 {
            let dir = tmp.path().join(format!("{mode}-{count}"));
            let parts = build_parts(&cfg, &dir, count);
            let summary = merge(&parts, &dir.join("merged")).expect("merge");
            assert_same_dataset(&dir.join("merged"), &one_go);
            if count == 5 {
                assert!(
                    summary.repacked > 0,
                    "parts of 7 samples end off shard boundaries"
                );
                let first = dir.join("part-1-of-5");
                assert_eq!(
                    classes_of(&first),
                    ["0"],
                    "part 1 names only its own labels"
                );
            }
        }
    }
    // A part reads only its own tars: part 1 of 5 built while the other tars hold zeros (of their
    // own sizes) still merges with the others into the one-go build.
    let cfg = config(&input, &tmp.path().join("one-go-raw"), Mode::Raw, 4);
    let intact: Vec<Vec<u8>> = tars
        .iter()
        .map(|t| std::fs::read(t).expect("tar"))
        .collect();
    for (tar, bytes) in tars.iter().zip(&intact).skip(1) {
        std::fs::write(tar, vec![0u8; bytes.len()]).expect("zeros");
    }
    let alone = build_part(&cfg, &tmp.path().join("alone"), 1, 5);
    for (tar, bytes) in tars.iter().zip(&intact).skip(1) {
        std::fs::write(tar, bytes).expect("restore");
    }
    let mut parts = build_parts(&cfg, &tmp.path().join("rest"), 5);
    parts.retain(|p| !p.ends_with("part-1-of-5"));
    parts.push(alone);
    merge(&parts, &tmp.path().join("merged-alone")).expect("merge");
    assert_same_dataset(&tmp.path().join("merged-alone"), &cfg.out);
}

#[test]
fn parquet_files_are_cut_by_whole_files_and_merge_into_the_one_go_build() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 32 rows in four files of 9, 9, 9, 5 (row groups of 3), the ClassLabel names in the schema;
    // row 12 (file 1, row 3) has a null image cell, and the broken JPEG is row 6 of file 0.
    let files = common::fixtures_as_parquet(&tmp.path().join("pq"), 9, 12);
    assert_eq!(files.len(), 4);
    let input = tmp.path().join("pq/train-*.parquet");
    for (mode, shard_size) in [(Mode::Raw, 4), (Mode::Jpeg, 5)] {
        let one_go = tmp.path().join(format!("one-go-{mode}"));
        let cfg = config(&input, &one_go, mode, shard_size);
        let summary = build(&cfg, &|_| {}).expect("one-go build");
        let rejects: Vec<(String, &str)> = summary
            .rejects
            .iter()
            .map(|(p, r)| (p.to_string_lossy().into_owned(), r.kind()))
            .collect();
        assert_eq!(rejects.len(), 2, "{rejects:?}");
        assert!(rejects[1].0.ends_with("train-00001.parquet:row 3") && rejects[1].1 == "no-image");
        assert_eq!(classes_of(&one_go), common::fixture_classes());
        // Six parts of four files: two are empty, and every part names the ClassLabel classes.
        for count in 1..=6 {
            let dir = tmp.path().join(format!("{mode}-{count}"));
            let parts = build_parts(&cfg, &dir, count);
            for part in &parts {
                assert_eq!(classes_of(part), common::fixture_classes());
            }
            merge(&parts, &dir.join("merged")).expect("merge");
            assert_same_dataset(&dir.join("merged"), &one_go);
        }
    }
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

    // Tars of the same names whose sizes differ between the machines: another input.
    let tars = common::fixtures_as_tars(&tmp.path().join("wds"), 10);
    let tar_cfg = config(
        &tmp.path().join("wds/shard-*.tar"),
        &tmp.path().join("unused"),
        Mode::Raw,
        4,
    );
    let first = build_part(&tar_cfg, &tmp.path().join("d"), 1, 2);
    let mut grown = std::fs::read(&tars[3]).expect("tar");
    grown.extend_from_slice(&[0u8; 1024]);
    std::fs::write(&tars[3], grown).expect("a tar of another size");
    let second = build_part(&tar_cfg, &tmp.path().join("d"), 2, 2);
    let msg = usage_message(merge(&[first, second.clone()], &out));
    assert!(
        msg.contains(&*second.to_string_lossy())
            && msg.contains("its input lists other files")
            && msg.contains("4 files"),
        "{msg}"
    );

    let whole = tmp.path().join("whole");
    build(&config(&common::fixtures(), &whole, Mode::Raw, 4), &|_| {}).expect("a whole build");
    let msg = usage_message(merge(&[whole.clone(), parts[0].clone()], &out));
    assert!(msg.contains("not a part of a build"), "{msg}");

    assert!(!out.exists(), "a refused merge leaves nothing at OUT");
}
