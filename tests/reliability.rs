//! Faults on an opened dataset (docs/RELIABILITY.md): shards truncated, overwritten or replaced at
//! open time and while a reader or loader has them open; every single-byte flip of a shard; and an
//! incomplete dataset directory. None may crash the process (SIGBUS) or serve pixels other than the
//! record's; each must be an error naming the shard.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use alexpipe::{build, BuildConfig, Dataset, Loader, LoaderConfig, Mode};

const SIZE: u32 = 32;

use crate::common;
use crate::common::{all_pixels, fixtures, read_all_pixels};

fn build_to(out: &Path, mode: Mode, shard_size: u64) {
    common::build_fixtures(out, SIZE, mode, shard_size, Some(2));
}

#[test]
fn a_shard_shorter_than_the_manifest_says_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 8);
    let shard = out.join("shard-00001.bin");
    let len = fs::metadata(&shard).expect("stat").len();
    fs::File::options()
        .write(true)
        .open(&shard)
        .and_then(|f| f.set_len(len - 1))
        .expect("truncate");
    let err = Dataset::open(&out).map(|_| ()).expect_err("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains("shard-00001.bin") && msg.contains("truncated") && msg.contains("rebuild"),
        "{msg}"
    );
}

#[test]
fn a_shard_truncated_while_open_is_an_error_not_sigbus() {
    for mode in [Mode::Raw, Mode::Jpeg] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("ds");
        build_to(&out, mode, 64); // one shard
        let ds = Dataset::open(&out).expect("open");
        let before = all_pixels(&ds);
        let shard = out.join("shard-00000.bin");
        let len = fs::metadata(&shard).expect("stat").len();
        // Cut the file in the middle of the data region, as `truncate` or a crashed copy would.
        fs::File::options()
            .write(true)
            .open(&shard)
            .and_then(|f| f.set_len(len / 2))
            .expect("truncate");
        let mut cut = 0;
        for (i, r) in read_all_pixels(&ds).into_iter().enumerate() {
            match r {
                Ok(px) => assert_eq!(px, before[i], "{mode:?} record {i}: wrong pixels"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("shard-00000.bin")
                            && msg.contains(&format!("record {i} "))
                            && msg.contains("truncated"),
                        "{msg}"
                    );
                    cut += 1;
                }
            }
        }
        assert!(cut > 0, "{mode:?}: half the records lie past the cut");
        let msg = ds.verify().map(|_| ()).expect_err("verify").to_string();
        assert!(msg.contains("truncated"), "{msg}");
    }
}

#[test]
fn a_shard_overwritten_in_place_while_open_is_an_error_not_other_pixels() {
    // `cp other shard-00000.bin` truncates the file and writes new bytes into the same inode: a
    // memory map would show them; the record checksums (from the table read at open) refuse them.
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build_to(&a, Mode::Raw, 64);
    // The same inputs less one: other records at the same offsets.
    let fewer = dir.path().join("fewer");
    for class in ["blobs", "checkers", "circles", "stripes"] {
        fs::create_dir_all(fewer.join(class)).expect("mkdir");
        for e in fs::read_dir(fixtures().join(class)).expect("ls").flatten() {
            fs::copy(e.path(), fewer.join(class).join(e.file_name())).expect("cp");
        }
    }
    fs::remove_file(fewer.join("blobs/blob_000.jpg")).expect("rm");
    let mut cfg = BuildConfig::new(&fewer, &b);
    cfg.size = SIZE;
    cfg.shard_size = 64;
    build(&cfg, &|_| {}).expect("build b");
    let ds = Dataset::open(&a).expect("open");
    let before = all_pixels(&ds);
    fs::copy(b.join("shard-00000.bin"), a.join("shard-00000.bin")).expect("overwrite in place");
    let after = read_all_pixels(&ds);
    let mut refused = 0;
    for (i, r) in after.into_iter().enumerate() {
        match r {
            Ok(px) => assert_eq!(
                px, before[i],
                "record {i}: served bytes it did not vouch for"
            ),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("shard-00000.bin")
                        && (msg.contains("checksum") || msg.contains("truncated")),
                    "{msg}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the other dataset's records differ");
}

#[test]
fn a_shard_replaced_by_rename_while_open_keeps_serving_the_opened_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    let ds = Dataset::open(&out).expect("open");
    let before = all_pixels(&ds);
    let shard = out.join("shard-00000.bin");
    let tmp = out.join("replacement");
    fs::write(&tmp, b"not a shard").expect("write");
    fs::rename(&tmp, &shard).expect("rename over the shard");
    assert_eq!(all_pixels(&ds), before, "the opened file is still read");
    ds.verify().expect("the opened file is intact");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("reopen")
        .to_string();
    assert!(msg.contains("shard-00000.bin"), "{msg}");
}

#[test]
fn a_loader_survives_a_shard_truncated_mid_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 8);
    let ds = Arc::new(Dataset::open(&out).expect("open"));
    let loader = Loader::new(
        ds.clone(),
        LoaderConfig {
            batch_size: 4,
            crop: 24,
            threads: 2,
            prefetch: 1,
            shuffle: false,
            ..LoaderConfig::default()
        },
    )
    .expect("loader");
    let mut it = loader.iter();
    let first = it.next().expect("a batch").expect("intact");
    assert_eq!(first.index(), 0);
    // Records 24..31 live in shard 3, read by batches 6 and 7; prefetch 1 means no worker is that far.
    fs::File::options()
        .write(true)
        .open(out.join("shard-00003.bin"))
        .and_then(|f| f.set_len(4096))
        .expect("truncate");
    let rest: Vec<_> = it.collect();
    assert_eq!(rest.len(), loader.len() - 1, "every batch is accounted for");
    let errors: Vec<String> = rest
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(!errors.is_empty(), "the batches over shard 3 fail");
    for msg in &errors {
        assert!(
            msg.contains("shard-00003.bin") && msg.contains("truncated"),
            "{msg}"
        );
    }
}

/// Flips each byte of a small shard in turn (all of them): `verify` always notices; a reader never
/// returns pixels other than the intact record's, and always refuses a record whose bytes changed.
fn every_flip(mode: Mode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, mode, 3);
    let good = all_pixels(&Dataset::open(&out).expect("open"));
    let shard = out.join("shard-00001.bin"); // records 3, 4, 5
    let pristine = fs::read(&shard).expect("read");
    let entry = |local: usize, at: usize| {
        let o = 64 + 32 * local + at;
        u64::from_le_bytes(pristine[o..o + 8].try_into().expect("8 bytes"))
    };
    let spans: Vec<(u64, u64)> = (0..3)
        .map(|r| (entry(r, 0), entry(r, 0) + entry(r, 8)))
        .collect();
    let (mut at_open, mut at_read, mut only_verify) = (0, 0, 0);
    // Raw shards are mostly pixels: every 7th byte of the data keeps the test quick; headers,
    // tables and JPEG records are tried byte by byte.
    let step_in_data = if mode == Mode::Raw { 7 } else { 1 };
    let mut pos = 0usize;
    while pos < pristine.len() {
        let mut bytes = pristine.clone();
        bytes[pos] ^= 0x5A;
        fs::write(&shard, &bytes).expect("write");
        let in_record = spans
            .iter()
            .position(|&(s, e)| (s..e).contains(&(pos as u64)));
        match Dataset::open(&out) {
            Err(e) => {
                assert!(e.to_string().contains("shard-00001.bin"), "{e}");
                at_open += 1;
            }
            Ok(ds) => {
                assert!(ds.verify().is_err(), "verify missed a flip at byte {pos}");
                for (i, r) in read_all_pixels(&ds).into_iter().enumerate() {
                    match r {
                        Ok(px) => {
                            assert_eq!(
                                px, good[i],
                                "flip at {pos}: record {i} served wrong pixels"
                            );
                            assert!(
                                in_record != Some(i.wrapping_sub(3)),
                                "flip at {pos} inside record {i} was not detected"
                            );
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            assert!(
                                msg.contains("shard-00001.bin") && msg.contains("checksum"),
                                "{msg}"
                            );
                        }
                    }
                }
                if in_record.is_some() {
                    at_read += 1;
                } else {
                    only_verify += 1; // table padding or gaps between records: read by nothing
                }
            }
        }
        pos += if pos < 4096 { 1 } else { step_in_data };
    }
    eprintln!(
        "{mode:?}: {} flips: {at_open} refused at open, {at_read} refused at read, {only_verify} only by verify",
        at_open + at_read + only_verify
    );
    assert!(
        at_open >= 64 + 3 * 32,
        "every header and table byte is checked at open"
    );
    assert!(
        at_read > 0 && only_verify > 0,
        "{at_open} {at_read} {only_verify}"
    );
}

#[test]
fn every_single_byte_flip_of_a_raw_shard_is_detected() {
    every_flip(Mode::Raw);
}

#[test]
fn every_single_byte_flip_of_a_jpeg_shard_is_detected() {
    every_flip(Mode::Jpeg);
}

#[test]
fn a_flipped_byte_in_the_mean_image_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    let p = out.join("mean_image.npy");
    let mut b = fs::read(&p).expect("read");
    let last = b.len() - 1;
    b[last] ^= 1;
    fs::write(&p, b).expect("write");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("open")
        .to_string();
    assert!(
        msg.contains("mean_image.npy") && msg.contains("--stats-only"),
        "{msg}"
    );
    // The records are still readable for recomputing the statistics.
    Dataset::open_without_stats(&out).expect("records intact");
}

#[test]
fn an_incomplete_dataset_directory_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    fs::remove_file(out.join("manifest.json")).expect("rm");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("open")
        .to_string();
    assert!(
        msg.contains("incomplete") && msg.contains("build-shards"),
        "{msg}"
    );
}

#[test]
fn manifest_file_names_cannot_leave_the_dataset_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    let p = out.join("manifest.json");
    let text = fs::read_to_string(&p).expect("read");
    // A hostile manifest with a valid checksum of its own (a damaged one is refused before).
    let hostile: serde_json::Value =
        serde_json::from_str(&text.replace("\"shard-00000.bin\"", "\"../ds/shard-00000.bin\""))
            .expect("still JSON");
    fs::write(
        &p,
        alexpipe::shards::seal_manifest(&hostile).expect("sealed"),
    )
    .expect("write");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("open")
        .to_string();
    assert!(msg.contains("not a plain file name"), "{msg}");
}

#[test]
fn a_progressive_jpeg_with_endless_scans_is_refused_not_decoded_forever() {
    use alexpipe::prep::{decode_rgb, DecodeOptions};
    let good = fs::read(fixtures().join("blobs/blob_002_progressive.jpg")).expect("fixture");
    decode_rgb(&good, &DecodeOptions::default()).expect("the fixture decodes");
    // Repeat the last scan (from its SOS marker to EOI) 1,000 times: each is a pass over the
    // whole image, so without a limit a few hundred kilobytes cost minutes of CPU.
    let sos = good
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .expect("an SOS marker");
    let eoi = good.len() - 2;
    assert_eq!(&good[eoi..], &[0xFF, 0xD9]);
    let mut bomb = good[..eoi].to_vec();
    for _ in 0..1000 {
        bomb.extend_from_slice(&good[sos..eoi]);
    }
    bomb.extend_from_slice(&[0xFF, 0xD9]);
    let err = match decode_rgb(&bomb, &DecodeOptions::default()) {
        Ok(img) => panic!("decoded {}x{} through 1,000 scans", img.width, img.height),
        Err(e) => e,
    };
    assert_eq!(err.kind(), "corrupt", "{err}");
    assert!(err.to_string().contains("scans"), "{err}");
}

/// Found by the `build_decode` fuzz target: a JPEG whose header fails after its SOF marker left the
/// thread's libjpeg-turbo decompressor mid-header, so the *next* JPEG on that thread (a build worker,
/// a loader worker) was refused as "two SOF markers". One bad file must not affect the next.
#[test]
fn a_jpeg_failing_in_its_header_does_not_poison_the_next_decode() {
    use alexpipe::prep::{decode_rgb, DecodeOptions};
    let good = fs::read(fixtures().join("checkers/tiny_17x11.jpg")).expect("fixture");
    let opts = DecodeOptions::default();
    decode_rgb(&good, &opts).expect("the fixture decodes");
    let sos = good
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("an SOS marker");
    for cut in [sos, sos + 4] {
        assert!(decode_rgb(&good[..cut], &opts).is_err(), "cut at {cut}");
        let again = decode_rgb(&good, &opts);
        assert!(
            again.is_ok(),
            "after a header failure (cut at {cut}): {again:?}"
        );
    }
}

#[test]
fn a_changed_statistic_in_the_manifest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    let p = out.join("manifest.json");
    let text = fs::read_to_string(&p).expect("read");
    // One digit of the channel mean: still valid JSON and a plausible value, wrong normalisation.
    let at = text.find("\"channel_mean\"").expect("stats") + "\"channel_mean\": [\n".len();
    let digit = text[at..]
        .find(|c: char| c.is_ascii_digit())
        .expect("a digit")
        + at;
    let mut bytes = text.into_bytes();
    bytes[digit] = if bytes[digit] == b'9' {
        b'8'
    } else {
        bytes[digit] + 1
    };
    fs::write(&p, &bytes).expect("write");
    serde_json::from_slice::<serde_json::Value>(&bytes).expect("still JSON");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("open")
        .to_string();
    assert!(
        msg.contains("manifest.json") && msg.contains("fails its own checksum"),
        "{msg}"
    );
}

/// docs/RELIABILITY.md's claim about `manifest.json`: its own CRC-32C covers every byte, so no
/// single-byte change of a sealed manifest can be opened — not in a statistic, a class name, a
/// shard's CRC, the whitespace, or the checksum's own digits. Each byte is changed in four ways (low
/// bit, high bit: no longer UTF-8, all bits, a space: still JSON wherever whitespace was).
#[test]
fn every_single_byte_change_of_a_sealed_manifest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 8);
    let p = out.join("manifest.json");
    let pristine = fs::read(&p).expect("read");
    Dataset::open(&out).expect("the sealed manifest opens");
    let mut changes = 0usize;
    for at in 0..pristine.len() {
        let b = pristine[at];
        for changed in [b ^ 0x01, b ^ 0x80, !b, b' '] {
            if changed == b {
                continue;
            }
            let mut bytes = pristine.clone();
            bytes[at] = changed;
            fs::write(&p, &bytes).expect("write");
            match Dataset::open(&out) {
                Ok(_) => panic!(
                    "byte {at} ({:?}) changed to {:?} was opened",
                    b as char, changed as char
                ),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("manifest.json") && msg.contains("checksum"),
                        "byte {at}: {msg}"
                    );
                }
            }
            changes += 1;
        }
    }
    // Every byte, ~4 ways each: the loop really ran over the whole file.
    assert!(changes > 3 * pristine.len(), "{changes} changes");
    fs::write(&p, &pristine).expect("restore");
    Dataset::open(&out).expect("restored manifest opens again");
}

/// A class name changed in an otherwise valid manifest (valid JSON, a plausible name, every other
/// field intact) is refused because the checksum no longer matches; the same edit sealed again
/// with `seal_manifest` opens and shows the new name, so the refusal is the checksum's alone.
#[test]
fn a_changed_class_name_in_the_manifest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 64);
    let p = out.join("manifest.json");
    let text = fs::read_to_string(&p).expect("read");
    assert!(
        Dataset::open(&out)
            .expect("open")
            .classes()
            .contains(&"circles".to_string()),
        "the fixtures have a class \"circles\""
    );
    let edited = text.replacen("\"circles\"", "\"squares\"", 1);
    assert_ne!(edited, text);
    serde_json::from_str::<serde_json::Value>(&edited).expect("still JSON");
    fs::write(&p, &edited).expect("write");
    let msg = Dataset::open(&out)
        .map(|_| ())
        .expect_err("a changed class name must be refused")
        .to_string();
    assert!(
        msg.contains("manifest.json") && msg.contains("fails its own checksum"),
        "{msg}"
    );

    let resealed: serde_json::Value = serde_json::from_str(&edited).expect("JSON");
    fs::write(
        &p,
        alexpipe::shards::seal_manifest(&resealed).expect("sealed"),
    )
    .expect("write");
    let ds = Dataset::open(&out).expect("the same edit, sealed again, opens");
    assert!(ds.classes().contains(&"squares".to_string()));
}
