//! The library's error type. Every variant names the file it is about and, where one exists, the fix.

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
    /// A dataset file (manifest, shard, statistics) is not what the format says it must be.
    #[error("{path}: {msg}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        msg: String,
    },
    /// Bad arguments or input layout: the message says what is wrong and how to fix it.
    #[error("{0}")]
    Usage(String),
    /// `--strict` build: an input image could not be used.
    #[error(
        "{path}: {reason} (run without --strict to skip such files and list them in rejects.tsv)"
    )]
    Rejected {
        /// The input file.
        path: PathBuf,
        /// Why it was rejected.
        reason: crate::prep::RejectReason,
    },
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
}
