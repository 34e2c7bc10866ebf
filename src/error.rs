//! The library's errors, by kind (after image-rs's `ImageError`): what a caller would handle
//! differently is a variant of its own. Every variant names the file (or dataset) it is about and,
//! where one exists, the fix. Bindings map kinds, not messages: the Python package raises
//! `ValueError` for [`Error::Usage`], `IndexError` for [`Error::OutOfRange`], `OSError` subclasses
//! for [`Error::Io`], and `alexpipe.AlexpipeError` subclasses for the rest.

use std::io;
use std::path::{Path, PathBuf};

/// Errors from building, opening or reading an alexpipe dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a named file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A dataset file (manifest, shard header, statistics, HDF5 layout) is not what its format
    /// says it must be: not ours, from another version, or inconsistent.
    #[error("{path}: {msg}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        msg: String,
    },
    /// Bytes that fail their checksum, or a file that changed or shrank under an open dataset:
    /// the data is damaged, and no pixel of it was served.
    #[error("{path}: {msg}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Which record or region, and what to do.
        msg: String,
    },
    /// Bad arguments or input layout: the message says what is wrong and how to fix it.
    #[error("{0}")]
    Usage(String),
    /// A record index past the end of a dataset.
    #[error("record {index} is out of range: {} has {len} records", location.display())]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// How many records there are.
        len: u64,
        /// The dataset.
        location: PathBuf,
    },
    /// A remote store (HTTP, S3) did not serve a file of a dataset: it refused (403, 404), or
    /// kept failing (429, 5xx, resets, timeouts, bodies cut short or failing their checksum) until
    /// the retries were spent.
    #[error("{url}: {msg}")]
    Remote {
        /// The file's URL.
        url: String,
        /// What went wrong (the last time), and what to do.
        msg: String,
    },
    /// A capability this build of alexpipe lacks (a cargo feature that was off).
    #[error("{0}")]
    Unsupported(String),
    /// `--strict` build: an input image could not be used.
    #[error(
        "{path}: {reason} (run without --strict to skip such files and list them in rejects.tsv)"
    )]
    Rejected {
        /// The input file.
        path: PathBuf,
        /// The kind of rejection, as `rejects.tsv` names it (`truncated`, `not_an_image`, …).
        kind: &'static str,
        /// Why it was rejected, in words.
        reason: String,
    },
    /// A failure inside alexpipe, not caused by the input: a worker thread that panicked or could
    /// not start, or a worker that stopped without a word. Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A corruption error on `path`.
    pub fn corrupt(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// The message of a panic payload, for [`Error::Internal`].
    pub(crate) fn from_panic(what: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Error::Internal(format!("{what} panicked: {msg}"))
    }
}

/// Adds the path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// An error and its causes on one line, each said once: a cause whose text the line already holds
/// (an `{path}: {source}` message repeats its source) is not repeated. What the command-line tools
/// print.
pub fn chain_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper that adds context without repeating its cause, like anyhow's `context`.
    #[derive(Debug, thiserror::Error)]
    #[error("reading the dataset")]
    struct Context(#[source] Error);

    #[test]
    fn chain_message_says_each_cause_once() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let e = Error::io("/data/x", io);
        assert_eq!(chain_message(&e), "/data/x: No such file or directory");
        let wrapped = Context(Error::io(
            "/data/y",
            io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied"),
        ));
        assert_eq!(
            chain_message(&wrapped),
            "reading the dataset: /data/y: Permission denied"
        );
    }

    #[test]
    fn a_panic_payload_becomes_an_internal_error_with_its_message() {
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("index 9 out of range"));
        let e = Error::from_panic("a loader worker", owned.as_ref());
        assert!(
            matches!(&e, Error::Internal(m) if m == "a loader worker panicked: index 9 out of range")
        );
        let text: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(
            Error::from_panic("a build worker", text.as_ref()).to_string(),
            "internal error: a build worker panicked: boom"
        );
    }
}
