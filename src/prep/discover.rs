//! Finding the inputs: an ImageFolder tree (one sub-folder per class, classes in sorted order, as
//! torchvision's `ImageFolder`) or a Caffe `convert_imageset`-style list file of `path label` lines.
//!
//! Every regular file inside a class folder is an input, whatever its extension: the decoder decides
//! from the bytes, and a file that is not an image is reported in `rejects.tsv`, never silently
//! skipped. Hidden files (name starting with `.`) are skipped. Files directly in the root are inputs
//! without a class and are reported as rejects.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::RejectReason;

use crate::error::{Error, IoContext, Result};

/// One input image: a lightweight descriptor (a file to read) or, from a container reader (a
/// WebDataset tar, a parquet file), the bytes it has read already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where to read it; for a container's sample, the container and the member or row
    /// (`shards/000003.tar:sample0042.jpg`), as error messages name it.
    pub path: PathBuf,
    /// Path relative to the input root, as written to `index.tsv` and `rejects.tsv`.
    pub rel: PathBuf,
    /// Class index, or `None` for a file outside any class folder.
    pub label: Option<u32>,
    /// Set when the input is refused before it is read (e.g. a list entry leaving `--root`).
    pub refused: Option<RejectReason>,
    /// The image's bytes when a container reader has read them; `None`: the build reads `path`.
    pub bytes: Option<Vec<u8>>,
}

impl Source {
    /// A file to read, with its label.
    pub fn file(path: PathBuf, rel: PathBuf, label: Option<u32>) -> Source {
        Source {
            path,
            rel,
            label,
            refused: None,
            bytes: None,
        }
    }

    /// An input that is refused before it is read, for `reason`.
    pub fn refused(path: PathBuf, rel: PathBuf, reason: RejectReason) -> Source {
        Source {
            path,
            rel,
            label: None,
            refused: Some(reason),
            bytes: None,
        }
    }
}

/// The most classes a build names by their numbers (labels without class names): a label past it is
/// refused, so that a stray huge label cannot make millions of classes.
pub const MAX_NUMBERED_CLASSES: usize = 1_000_000;

/// The inputs in record order: listed up front (a folder, a list file) or produced while the build
/// runs by a container reader that streams them with bounded memory (WebDataset tars, parquet).
pub type SourceStream = Box<dyn Iterator<Item = Source> + Send>;

/// Everything a build will consume.
pub struct Inputs {
    /// Class names; a label is an index into this list.
    pub classes: Vec<String>,
    /// The class list grows with the labels read: label `i` past the list adds the classes up to
    /// `i`, named by their numbers (a WebDataset without `--class-names`). When false, a label
    /// past the list is refused (`no-label`).
    pub classes_from_labels: bool,
    /// How many inputs there are, when known before they are read (for the progress bar).
    pub len: Option<u64>,
    /// All inputs, in record order.
    pub sources: SourceStream,
}

impl Inputs {
    /// Inputs known up front.
    pub fn listed(classes: Vec<String>, sources: Vec<Source>) -> Inputs {
        Inputs {
            classes,
            classes_from_labels: false,
            len: Some(sources.len() as u64),
            sources: Box::new(sources.into_iter()),
        }
    }
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("classes", &self.classes)
            .field("classes_from_labels", &self.classes_from_labels)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Walks an ImageFolder tree. Class folders are sorted by name (Unicode code point order, as Python's
/// `sorted`); files in each class, found recursively, are sorted by relative path.
pub fn discover_folder(root: &Path) -> Result<Inputs> {
    let mut class_dirs = Vec::new();
    let mut loose = Vec::new();
    for entry in fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        // Follow symlinks, as ImageFolder does.
        let meta = fs::metadata(&path).at(&path)?;
        if meta.is_dir() {
            let name = name.into_string().map_err(|n| {
                Error::Usage(format!(
                    "{}: class folder name {n:?} is not valid UTF-8; rename it",
                    path.display()
                ))
            })?;
            class_dirs.push((name, path));
        } else {
            loose.push(Source::refused(
                path,
                PathBuf::from(&name),
                RejectReason::NoClass,
            ));
        }
    }
    if class_dirs.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no class sub-folders found; expected one folder per class (ImageFolder layout) or a list file with --root",
            root.display()
        )));
    }
    class_dirs.sort();
    let mut sources = Vec::new();
    for (label, (name, dir)) in class_dirs.iter().enumerate() {
        let mut files = Vec::new();
        walk_files(dir, &mut files)?;
        files.sort();
        sources.extend(files.into_iter().map(|path| {
            let rel = Path::new(name).join(path.strip_prefix(dir).unwrap_or(&path));
            Source::file(path, rel, Some(label as u32))
        }));
    }
    loose.sort_by(|a, b| a.rel.cmp(&b.rel));
    sources.extend(loose);
    if sources.iter().all(|s| s.label.is_none()) {
        return Err(Error::Usage(format!(
            "{}: the class folders contain no files; put the images in one sub-folder per class",
            root.display()
        )));
    }
    Ok(Inputs::listed(
        class_dirs.into_iter().map(|(n, _)| n).collect(),
        sources,
    ))
}

/// Collects the files under `dir`, following symbolic links (as ImageFolder does) but entering each
/// real directory once, so a link back to a parent cannot loop.
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    walk_files_once(dir, out, &mut HashSet::new())
}

fn walk_files_once(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<()> {
    if !seen.insert(fs::canonicalize(dir).at(dir)?) {
        return Ok(());
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if is_hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk_files_once(&path, out, seen)?,
            // Files, and also entries we cannot stat (a dangling link): the build reports them.
            _ => out.push(path),
        }
    }
    Ok(())
}

/// Reads a list file: one `relative/path label` per line (the label is the last whitespace-separated
/// field, so paths may contain spaces), blank lines and lines starting with `#` ignored. Paths are
/// relative to `root`; an absolute path or one with `..` would leave `root` and is refused (listed as a
/// reject, `outside-root`). Class names come from `class_names` (one per line) when given, otherwise they
/// are the label numbers `0..=max`.
pub fn discover_list(list: &Path, root: &Path, class_names: Option<&Path>) -> Result<Inputs> {
    let text = fs::read_to_string(list).at(list)?;
    let mut sources = Vec::new();
    let mut max_label = None::<u32>;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            Error::Usage(format!(
                "{}:{}: {why}; each line must be `relative/path label` with an integer label ≥ 0",
                list.display(),
                n + 1
            ))
        };
        let (rel, label) = line
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| bad("no label"))?;
        let label: u32 = label
            .parse()
            .map_err(|_| bad(&format!("label {label:?} is not an integer")))?;
        let rel = rel.trim();
        if rel.is_empty() {
            return Err(bad("empty path"));
        }
        max_label = Some(max_label.map_or(label, |m| m.max(label)));
        let escapes = Path::new(rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        let mut source = Source::file(root.join(rel), PathBuf::from(rel), Some(label));
        source.refused = escapes.then_some(RejectReason::OutsideRoot);
        sources.push(source);
    }
    let Some(max_label) = max_label else {
        return Err(Error::Usage(format!(
            "{}: the list file has no entries",
            list.display()
        )));
    };
    let classes = match class_names {
        Some(p) => {
            let names = read_class_names(p)?;
            if names.len() <= max_label as usize {
                return Err(Error::Usage(format!(
                    "{}: {} class names, but {} uses label {max_label}; add the missing names",
                    p.display(),
                    names.len(),
                    list.display()
                )));
            }
            names
        }
        None => (0..=max_label).map(|l| l.to_string()).collect(),
    };
    Ok(Inputs::listed(classes, sources))
}

/// Reads a `--class-names` file: one class name per line, blank lines ignored.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    Ok(fs::read_to_string(path)
        .at(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_classes_sorted_and_loose_files_unlabelled() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let root = dir.path();
        for (class, file) in [
            ("b", "2.jpg"),
            ("b", "1.jpg"),
            ("a", "x/deep.png"),
            ("a", ".hidden"),
        ] {
            let p = root.join(class).join(file);
            fs::create_dir_all(p.parent().unwrap_or(root)).at(&p)?;
            fs::write(&p, b"x").at(&p)?;
        }
        fs::write(root.join("loose.jpg"), b"x").at(root)?;
        let inputs = discover_folder(root)?;
        assert_eq!(inputs.classes, vec!["a", "b"]);
        let rels: Vec<_> = inputs.sources.map(|s| (s.rel, s.label)).collect();
        assert_eq!(
            rels,
            vec![
                (PathBuf::from("a/x/deep.png"), Some(0)),
                (PathBuf::from("b/1.jpg"), Some(1)),
                (PathBuf::from("b/2.jpg"), Some(1)),
                (PathBuf::from("loose.jpg"), None),
            ]
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_entered_once() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let class = dir.path().join("c");
        fs::create_dir_all(&class).at(&class)?;
        fs::write(class.join("a.jpg"), b"x").at(&class)?;
        std::os::unix::fs::symlink(&class, class.join("loop")).at(&class)?;
        std::os::unix::fs::symlink(dir.path(), class.join("up")).at(&class)?;
        let inputs = discover_folder(dir.path())?;
        let rels: Vec<_> = inputs.sources.map(|s| s.rel).collect();
        assert_eq!(rels, vec![PathBuf::from("c/a.jpg")]);
        Ok(())
    }

    #[test]
    fn list_file_allows_spaces_and_reports_bad_lines() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let list = dir.path().join("list.txt");
        fs::write(&list, "# comment\nsome dir/a b.jpg 2\n\nc.png 0\n").at(&list)?;
        let inputs = discover_list(&list, Path::new("/data"), None)?;
        assert_eq!(inputs.classes, vec!["0", "1", "2"]);
        let sources: Vec<Source> = inputs.sources.collect();
        assert_eq!(sources[0].path, PathBuf::from("/data/some dir/a b.jpg"));
        assert_eq!(sources[0].label, Some(2));
        fs::write(&list, "../etc/passwd 0\n/etc/shadow 0\n./ok/a.jpg 0\n").at(&list)?;
        let refused: Vec<bool> = discover_list(&list, Path::new("/data"), None)?
            .sources
            .map(|s| s.refused.is_some())
            .collect();
        assert_eq!(refused, vec![true, true, false]);
        fs::write(&list, "a.jpg x\n").at(&list)?;
        let err = discover_list(&list, Path::new("/data"), None)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("list.txt:1") && err.contains("not an integer"),
            "{err}"
        );
        Ok(())
    }
}
