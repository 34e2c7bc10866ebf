//! WebDataset input: tar shards (`.tar`, or gzipped `.tar.gz` / `.tgz`; local paths or `http(s)://`
//! URLs) read as a stream, one sample at a time, with bounded memory.
//!
//! Samples are grouped as webdataset groups them: consecutive members sharing a key, the key being
//! the member path up to the first dot of its file name and the extension the rest, lower-cased
//! (`a/b.seg.png` → key `a/b`, extension `seg.png`). A sample's image is its first member of
//! [`IMAGE_EXTENSIONS`] in that order of preference; its label comes from [`LabelKey`] (default the
//! `cls` member's integer text). Each sample becomes one [`Source`] carrying the image's bytes, named
//! `TAR:MEMBER` in `index.tsv` and `rejects.tsv`. A tar that cannot be opened, a sample without an
//! image or a label, and a tar damaged or cut short each become a reject; every sample completed
//! before damage is kept.
//!
//! Not for writing tars, nor for other members than the image and the label (they are skipped).

use std::fs;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::thread;

use super::discover::{read_class_names, Inputs, Source};
use super::pattern::is_url;
use super::{looks_like_image, RejectReason};
use crate::error::{Error, Result};

/// The image extensions, in order of preference (webdataset's decoders' usual ones).
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "ppm", "bmp", "tif", "tiff", "gif",
];

/// The largest label member read (a `cls` or `json` member); a bigger one is refused.
const MAX_LABEL_BYTES: u64 = 1 << 20;

/// Samples read ahead of the build's feeder: bounds the reader's memory.
const READ_AHEAD: usize = 16;

/// Where a sample's label is (`--label-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelKey {
    /// `EXT`: the member with extension `EXT` holds the label as integer text (`cls`, `txt`).
    Text(String),
    /// `EXT:FIELD[.FIELD…]`: the member `EXT` is JSON; the label is the integer at that field path.
    Json {
        /// The member's extension (`json`).
        ext: String,
        /// The field path, outermost first.
        fields: Vec<String>,
    },
}

impl LabelKey {
    /// Parses `cls`, `txt`, `json:label`, `json:meta.label`.
    pub fn parse(spec: &str) -> Result<LabelKey> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "--label-key {spec:?}: {why}; write EXT (a member holding the integer label, e.g. cls) or EXT:FIELD (an integer field of a JSON member, e.g. json:label)"
            ))
        };
        let (ext, fields) = match spec.split_once(':') {
            None => (spec, None),
            Some((ext, path)) => (ext, Some(path)),
        };
        let ext = ext.trim().trim_start_matches('.').to_ascii_lowercase();
        if ext.is_empty() || ext.contains('/') {
            return Err(bad("no member extension"));
        }
        match fields {
            None => Ok(LabelKey::Text(ext)),
            Some(path) => {
                let fields: Vec<String> = path.split('.').map(|f| f.trim().to_string()).collect();
                if fields.iter().any(String::is_empty) {
                    return Err(bad("an empty field name"));
                }
                Ok(LabelKey::Json { ext, fields })
            }
        }
    }

    /// The extension of the member holding the label.
    pub fn ext(&self) -> &str {
        match self {
            LabelKey::Text(ext) | LabelKey::Json { ext, .. } => ext,
        }
    }

    /// The label in `bytes`, the member `member`'s content.
    pub fn label(&self, member: &str, bytes: &[u8]) -> std::result::Result<u32, String> {
        let as_label = |v: &serde_json::Value| -> Option<u32> {
            match v {
                serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        };
        match self {
            LabelKey::Text(_) => {
                let text = String::from_utf8_lossy(bytes);
                text.trim().parse::<u32>().map_err(|_| {
                    format!(
                        "{member}: {:?} is not an integer label ≥ 0",
                        text.trim().chars().take(40).collect::<String>()
                    )
                })
            }
            LabelKey::Json { fields, .. } => {
                let value: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| format!("{member}: not valid JSON ({e})"))?;
                let mut v = &value;
                for f in fields {
                    v = v.get(f).ok_or_else(|| {
                        format!("{member}: no field {:?} (--label-key)", fields.join("."))
                    })?;
                }
                as_label(v).ok_or_else(|| {
                    format!(
                        "{member}: field {:?} is {v}, not an integer label ≥ 0",
                        fields.join(".")
                    )
                })
            }
        }
    }
}

/// A member's sample key and extension, as webdataset splits them; `None` when the file name has
/// no extension (webdataset skips such members).
pub fn split_member(name: &str) -> Option<(&str, String)> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base_start..].find('.')? + base_start;
    if dot == base_start {
        return None; // ".hidden": no key
    }
    Some((&name[..dot], name[dot + 1..].to_ascii_lowercase()))
}

/// How to read WebDataset shards.
#[derive(Debug, Clone)]
pub struct WebDatasetOptions {
    /// Where the label is.
    pub label_key: LabelKey,
    /// Class names (`--class-names`); `None`: the labels name their classes.
    pub classes: Option<Vec<String>>,
    /// The largest image member read (bigger ones are refused unread).
    pub max_bytes: u64,
}

impl WebDatasetOptions {
    /// From the command line's `--label-key` (default `cls`) and `--class-names`.
    pub fn new(
        label_key: Option<&str>,
        class_names: Option<&Path>,
        max_bytes: u64,
    ) -> Result<Self> {
        Ok(WebDatasetOptions {
            label_key: LabelKey::parse(label_key.unwrap_or("cls"))?,
            classes: class_names.map(read_class_names).transpose()?,
            max_bytes,
        })
    }
}

/// The inputs of the WebDataset `shards` `read` of the whole input `shards` (local paths or URLs,
/// in order; a part of a build reads a slice, a one-go build all): a stream of their samples
/// read by a thread of its own, at most 16 samples ahead. Every local shard of the input must
/// exist; only those of `read` are opened.
pub fn discover_webdataset(
    shards: Vec<String>,
    read: Range<usize>,
    opts: WebDatasetOptions,
) -> Result<Inputs> {
    if shards.is_empty() {
        return Err(Error::Usage("no WebDataset shards given".into()));
    }
    let missing: Vec<&String> = shards
        .iter()
        .filter(|s| !is_url(s) && !Path::new(s).is_file())
        .collect();
    if let Some(first) = missing.first() {
        return Err(Error::Usage(format!(
            "{first}: WebDataset shard does not exist ({} of the {} shards named are missing); check the path or the brace range",
            missing.len(),
            shards.len()
        )));
    }
    let shards = shards.get(read).map(<[String]>::to_vec).unwrap_or_default();
    let (tx, rx) = crossbeam_channel::bounded(READ_AHEAD);
    let classes = opts.classes.clone();
    thread::Builder::new()
        .name("alexpipe-webdataset".into())
        .spawn(move || {
            for shard in &shards {
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_shard(shard, &opts, &mut |s| tx.send(s).is_ok())
                }));
                let go_on = match read {
                    Ok(go_on) => go_on,
                    Err(_) => tx
                        .send(Source::refused(
                            PathBuf::from(shard),
                            PathBuf::from(shard),
                            RejectReason::DecoderPanic(
                                "the tar reader crashed on this shard (a bug: please report it); its remaining samples were not read".into(),
                            ),
                        ))
                        .is_ok(),
                };
                if !go_on {
                    return; // the build stopped
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the WebDataset reader thread: {e}")))?;
    Ok(Inputs {
        classes_from_labels: classes.is_none(),
        classes: classes.unwrap_or_default(),
        len: None,
        sources: Box::new(rx.into_iter()),
    })
}

/// Opens a shard as a byte stream: a file, or the body of an HTTP GET.
fn open_shard(shard: &str) -> std::result::Result<Box<dyn Read>, String> {
    let raw = open_raw(shard)?;
    Ok(if is_gzipped(shard) {
        // `.tar.gz` / `.tgz`, as webdataset reads them; offsets are then in the uncompressed tar.
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            raw,
        )))
    } else {
        raw
    })
}

/// True for a `.tar.gz` / `.tgz` shard name (a URL's query string aside).
pub fn is_gzipped(shard: &str) -> bool {
    let path = shard
        .split(['?', '#'])
        .next()
        .unwrap_or(shard)
        .to_ascii_lowercase();
    path.ends_with(".tar.gz") || path.ends_with(".tgz")
}

/// True for a WebDataset shard name: `.tar`, `.tar.gz` or `.tgz`.
pub fn is_tar_name(shard: &str) -> bool {
    is_gzipped(shard) || shard.to_ascii_lowercase().ends_with(".tar")
}

fn open_raw(shard: &str) -> std::result::Result<Box<dyn Read>, String> {
    if is_url(shard) {
        // Timeouts to connect and for the response to start; the body (a whole shard) may take
        // as long as it takes, read as the build consumes it.
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(60)))
            .build();
        let response = ureq::Agent::new_with_config(config)
            .get(shard)
            .call()
            .map_err(|e| format!("GET {shard}: {e}; check the URL and that the server is up"))?;
        Ok(Box::new(response.into_body().into_reader()))
    } else {
        let file = fs::File::open(shard).map_err(|e| format!("cannot open the tar: {e}"))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err("not a regular file".into());
        }
        Ok(Box::new(file))
    }
}

/// The sample being grouped.
struct Group {
    key: String,
    /// (preference, member name, bytes or why not).
    image: Option<(usize, String, std::result::Result<Vec<u8>, RejectReason>)>,
    /// (member name, bytes).
    label: Option<(String, Vec<u8>)>,
    /// Extensions seen, for messages and duplicates.
    exts: Vec<String>,
    duplicate: Option<String>,
}

impl Group {
    fn new(key: &str) -> Group {
        Group {
            key: key.to_string(),
            image: None,
            label: None,
            exts: Vec::new(),
            duplicate: None,
        }
    }

    /// The sample as a build input.
    fn into_source(self, shard: &str, opts: &WebDatasetOptions) -> Source {
        let member = self
            .image
            .as_ref()
            .map_or_else(|| self.key.clone(), |(_, m, _)| m.clone());
        let name = format!("{shard}:{member}");
        let refuse = |reason| Source::refused(PathBuf::from(&name), PathBuf::from(&name), reason);
        if let Some(dup) = self.duplicate {
            return refuse(RejectReason::Corrupt(format!(
                "sample {:?} has two members {dup:?}; webdataset refuses duplicate names in a sample",
                self.key
            )));
        }
        let Some((_, _, image)) = self.image else {
            return refuse(RejectReason::NoImage(format!(
                "sample {:?} has no image member (one of {}); it has: {}",
                self.key,
                IMAGE_EXTENSIONS.join(", "),
                self.exts.join(", ")
            )));
        };
        let label = match &self.label {
            Some((m, bytes)) => opts.label_key.label(m, bytes),
            None => Err(format!(
                "sample {:?} has no {:?} member for its label (it has: {}); say where the label is with --label-key EXT or EXT:FIELD",
                self.key,
                opts.label_key.ext(),
                self.exts.join(", ")
            )),
        };
        match (image, label) {
            (Err(reason), _) => refuse(reason),
            (Ok(_), Err(why)) => refuse(RejectReason::NoLabel(why)),
            (Ok(bytes), Ok(label)) => Source {
                path: PathBuf::from(&name),
                rel: PathBuf::from(&name),
                label: Some(label),
                refused: None,
                bytes: Some(bytes),
            },
        }
    }
}

/// Reads exactly `len` bytes of a member, or says where the tar ended.
fn read_member(entry: &mut impl Read, len: u64, keep: bool) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let got = if keep {
        bytes.reserve(len as usize);
        entry.take(len).read_to_end(&mut bytes)? as u64
    } else {
        io::copy(&mut entry.take(len), &mut io::sink())?
    };
    if got < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the member declares {len} bytes, only {got} are there"),
        ));
    }
    Ok(bytes)
}

/// Reads an image member as the folder input reads a file: its first 64 bytes, and the rest only
/// when they look like an image and the member is within `max_bytes`, so a huge non-image costs
/// no memory. The outer error: the tar ended or failed inside the member.
fn read_image_member(
    entry: &mut impl Read,
    len: u64,
    max_bytes: u64,
) -> io::Result<std::result::Result<Vec<u8>, RejectReason>> {
    let head = len.min(64);
    let mut bytes = read_member(entry, head, true)?;
    let refused = if len == 0 {
        Some(RejectReason::Empty)
    } else if !looks_like_image(&bytes) {
        Some(RejectReason::NotAnImage)
    } else if len > max_bytes {
        Some(RejectReason::FileTooLarge {
            bytes: len,
            limit: max_bytes,
        })
    } else {
        None
    };
    let keep = refused.is_none();
    let rest = read_member(entry, len - head, keep).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the member declares {len} bytes, fewer are there ({e})"),
        )
    })?;
    match refused {
        Some(reason) => Ok(Err(reason)),
        None => {
            bytes.extend_from_slice(&rest);
            Ok(Ok(bytes))
        }
    }
}

/// Reads one shard, calling `emit` with each sample (and reject) in order; false when `emit`
/// says the build has stopped.
fn read_shard(shard: &str, opts: &WebDatasetOptions, emit: &mut dyn FnMut(Source) -> bool) -> bool {
    let reader = match open_shard(shard) {
        Ok(r) => r,
        Err(why) => {
            return emit(Source::refused(
                PathBuf::from(shard),
                PathBuf::from(shard),
                RejectReason::Unreadable(why),
            ))
        }
    };
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            return emit(Source::refused(
                PathBuf::from(shard),
                PathBuf::from(shard),
                RejectReason::Corrupt(format!("not a tar: {e}")),
            ))
        }
    };
    let mut group: Option<Group> = None;
    // The end of the last complete member, and its name: where damage is reported.
    let mut good_end = 0u64;
    let mut last_member = String::from("(none)");
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                if let Some(g) = group.take() {
                    if !emit(g.into_source(shard, opts)) {
                        return false;
                    }
                }
                return emit(Source::refused(
                    PathBuf::from(shard),
                    PathBuf::from(shard),
                    RejectReason::Corrupt(format!(
                        "the tar is damaged or cut short after byte {good_end} (after member {last_member}): {e}; the samples before it are kept"
                    )),
                ));
            }
        };
        if !entry.header().entry_type().is_file() {
            continue; // directories, links: not samples
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let len = entry.size();
        let start = entry.raw_file_position();
        let Some((key, ext)) = split_member(&name) else {
            let kept = read_member(&mut entry, len, false);
            let reason = match kept {
                Ok(_) => RejectReason::NoImage(format!(
                    "member {name:?} has no extension, so it belongs to no sample (webdataset skips it)"
                )),
                Err(e) => RejectReason::Corrupt(format!(
                    "truncated at byte {}: member {name}: {e}",
                    start
                )),
            };
            let failed = matches!(reason, RejectReason::Corrupt(_));
            if failed {
                // Cut short here: the pending sample's members are complete; keep it.
                if let Some(g) = group.take() {
                    if !emit(g.into_source(shard, opts)) {
                        return false;
                    }
                }
            }
            let rel = PathBuf::from(format!("{shard}:{name}"));
            if !emit(Source::refused(rel.clone(), rel, reason)) {
                return false;
            }
            if failed {
                return true; // on to the next shard
            }
            continue;
        };
        if group.as_ref().is_some_and(|g| g.key != key) {
            if let Some(g) = group.take() {
                if !emit(g.into_source(shard, opts)) {
                    return false;
                }
            }
        }
        let g = group.get_or_insert_with(|| Group::new(key));
        if g.exts.contains(&ext) {
            g.duplicate.get_or_insert_with(|| name.clone());
        }
        g.exts.push(ext.clone());
        let preference = IMAGE_EXTENSIONS.iter().position(|e| *e == ext);
        let result = if let Some(p) =
            preference.filter(|&p| g.image.as_ref().is_none_or(|i| p < i.0))
        {
            read_image_member(&mut entry, len, opts.max_bytes)
                .map(|image| g.image = Some((p, name.clone(), image)))
        } else if ext == opts.label_key.ext() && g.label.is_none() && len <= MAX_LABEL_BYTES {
            read_member(&mut entry, len, true).map(|bytes| g.label = Some((name.clone(), bytes)))
        } else {
            read_member(&mut entry, len, false).map(|_| ())
        };
        if let Err(e) = result {
            // The sample this member belongs to is lost with it; the ones before are kept.
            let rel = PathBuf::from(format!("{shard}:{name}"));
            return emit(Source::refused(
                rel.clone(),
                rel,
                RejectReason::Corrupt(format!(
                    "the tar is cut short or unreadable in member {name} (data from byte {start}): {e}; the samples before it are kept"
                )),
            ));
        }
        good_end = start + len.div_ceil(512) * 512;
        last_member = name;
    }
    match group {
        Some(g) => emit(g.into_source(shard, opts)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_into_key_and_lowercased_extension_as_webdataset_does() {
        assert_eq!(
            split_member("sample0042.jpg"),
            Some(("sample0042", "jpg".into()))
        );
        assert_eq!(split_member("a/b.seg.PNG"), Some(("a/b", "seg.png".into())));
        assert_eq!(
            split_member("dir.v2/x.cls"),
            Some(("dir.v2/x", "cls".into()))
        );
        assert_eq!(split_member("README"), None);
        assert_eq!(split_member("d/.hidden"), None);
    }

    #[test]
    fn tar_names_and_gzip_are_recognised() {
        assert!(is_tar_name("a/shard-000001.tar") && !is_gzipped("a/shard-000001.tar"));
        assert!(is_tar_name("s.TAR.GZ") && is_gzipped("s.TAR.GZ"));
        assert!(is_gzipped("http://h/s.tgz?download=1"));
        assert!(!is_tar_name("data.parquet") && !is_tar_name("list.txt"));
    }

    #[test]
    fn label_keys_parse_and_read_labels() -> Result<()> {
        assert_eq!(LabelKey::parse("cls")?, LabelKey::Text("cls".into()));
        assert_eq!(LabelKey::parse(".TXT")?, LabelKey::Text("txt".into()));
        let json = LabelKey::parse("json:meta.label")?;
        assert_eq!(
            json,
            LabelKey::Json {
                ext: "json".into(),
                fields: vec!["meta".into(), "label".into()]
            }
        );
        assert!(LabelKey::parse("").is_err());
        assert!(LabelKey::parse("json:").is_err());
        assert!(LabelKey::parse("json:a..b").is_err());
        let cls = LabelKey::Text("cls".into());
        assert_eq!(cls.label("s.cls", b" 7\n"), Ok(7));
        assert!(cls.label("s.cls", b"-1").is_err());
        assert!(cls.label("s.cls", b"cat").is_err());
        assert_eq!(json.label("s.json", br#"{"meta": {"label": 3}}"#), Ok(3));
        assert_eq!(json.label("s.json", br#"{"meta": {"label": "4"}}"#), Ok(4));
        assert!(json.label("s.json", br#"{"meta": {}}"#).is_err());
        assert!(json
            .label("s.json", br#"{"meta": {"label": 1.5}}"#)
            .is_err());
        assert!(json.label("s.json", b"not json").is_err());
        Ok(())
    }

    /// A tar of (name, bytes) members, as Python's tarfile writes it (ustar).
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap_or_default();
        }
        b.into_inner().unwrap_or_default()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Source>> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("s.tar");
        fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        let opts = WebDatasetOptions::new(None, None, 1 << 20)?;
        let mut out = Vec::new();
        read_shard(&path.to_string_lossy(), &opts, &mut |s| {
            out.push(s);
            true
        });
        Ok(out)
    }

    #[test]
    fn samples_group_by_key_prefer_jpg_and_truncation_keeps_what_came_before() -> Result<()> {
        let jpg: &[u8] = b"\xff\xd8\xffjpeg";
        let png: &[u8] = b"\x89PNG\r\n\x1a\npng";
        let tar = tar_of(&[
            ("a.png", png),
            ("a.jpg", jpg),
            ("a.cls", b"2"),
            ("b.png", png),
            ("b.json", b"{}"),
            ("c.jpg", jpg),
            ("c.cls", b"x"),
            ("d.jpg", jpg),
            ("d.cls", b"1"),
        ]);
        let got = read_all(&tar)?;
        let summary: Vec<(String, Option<u32>, Option<&'static str>)> = got
            .iter()
            .map(|s| {
                let rel = s.rel.to_string_lossy();
                let member = rel.rsplit(':').next().unwrap_or_default().to_string();
                (member, s.label, s.refused.as_ref().map(|r| r.kind()))
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a.jpg".into(), Some(2), None),
                ("b.png".into(), None, Some("no-label")),
                ("c.jpg".into(), None, Some("no-label")),
                ("d.jpg".into(), Some(1), None),
            ]
        );
        assert_eq!(got[0].bytes.as_deref(), Some(jpg));
        // Cut inside d.jpg's data: a, b, c kept, then one reject naming d.jpg.
        let d_data = tar.windows(jpg.len()).rposition(|w| w == jpg).unwrap_or(0);
        let got = read_all(&tar[..d_data + 3])?;
        assert_eq!(got.len(), 4, "{got:?}");
        let last = &got[3];
        assert!(last.rel.to_string_lossy().ends_with(":d.jpg"), "{last:?}");
        assert_eq!(last.refused.as_ref().map(|r| r.kind()), Some("corrupt"));
        Ok(())
    }
}
