//! INPUT patterns for the container formats, as WebDataset and Hugging Face users write them:
//! brace ranges and lists (`shard-{000000..000099}.tar`, `{train,val}.tar`, expanded as the
//! `braceexpand` package webdataset uses does, zero padding kept), then shell globs
//! (`data/train-*.parquet`) on local paths. `http(s)://` URLs are brace-expanded only.
//!
//! Not for ImageFolder or list-file inputs: those are plain paths.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// True for an `http://` or `https://` URL.
pub fn is_url(input: &str) -> bool {
    let lower = input.get(..8).unwrap_or(input).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// True when `input` holds a brace or glob pattern to expand.
pub fn is_pattern(input: &str) -> bool {
    input.contains(['{', '*', '?', '['])
}

/// Expands every `{a..b}` range (numeric, zero-padded to the wider end, either direction) and
/// `{x,y,z}` list in `pattern`, left to right, nested braces included; a brace without a partner
/// or with neither `..` nor `,` inside stays as written (as `braceexpand` does).
pub fn expand_braces(pattern: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out)?;
    Ok(out)
}

/// The largest expansion accepted: a typo like `{0..99999999}` must not eat the memory.
const MAX_EXPANSION: usize = 1_000_000;

fn expand_into(pattern: &str, out: &mut Vec<String>) -> Result<()> {
    let Some((open, close)) = first_group(pattern) else {
        out.push(pattern.to_string());
        return Ok(());
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let alternatives = match range(body)? {
        Some(items) => items,
        None => split_top_level(body),
    };
    for alt in alternatives {
        expand_into(&format!("{head}{alt}{tail}"), out)?;
        if out.len() > MAX_EXPANSION {
            return Err(Error::Usage(format!(
                "{pattern}: the brace pattern names more than {MAX_EXPANSION} inputs; check the range"
            )));
        }
    }
    Ok(())
}

/// The byte offsets of the first `{…}` that is a range or a list (its matching `}`).
fn first_group(pattern: &str) -> Option<(usize, usize)> {
    let bytes = pattern.as_bytes();
    let mut start = 0;
    while let Some(rel) = pattern[start..].find('{') {
        let open = start + rel;
        let mut depth = 0usize;
        let mut close = None;
        let mut comma = false;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                b',' if depth == 1 => comma = true,
                _ => {}
            }
        }
        if let Some(close) = close {
            let body = &pattern[open + 1..close];
            if comma || is_range(body) {
                return Some((open, close));
            }
        }
        start = open + 1;
    }
    None
}

fn is_range(body: &str) -> bool {
    body.split_once("..").is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && {
            b.bytes().all(|c| c.is_ascii_digit())
        }
    })
}

/// `a..b` as its zero-padded numbers, or `None` when `body` is not a range.
fn range(body: &str) -> Result<Option<Vec<String>>> {
    if !is_range(body) {
        return Ok(None);
    }
    let Some((a, b)) = body.split_once("..") else {
        return Ok(None);
    };
    let parse = |t: &str| {
        t.parse::<u64>()
            .map_err(|_| Error::Usage(format!("{{{body}}}: {t} is not a number in range")))
    };
    let (lo, hi) = (parse(a)?, parse(b)?);
    if lo.abs_diff(hi) as usize >= MAX_EXPANSION {
        return Err(Error::Usage(format!(
            "{{{body}}}: the range names more than {MAX_EXPANSION} inputs; check it"
        )));
    }
    // Zero padding when either end is written with a leading zero (braceexpand's rule).
    let padded = (a.len() > 1 && a.starts_with('0')) || (b.len() > 1 && b.starts_with('0'));
    let width = if padded { a.len().max(b.len()) } else { 0 };
    let numbers: Vec<u64> = if lo <= hi {
        (lo..=hi).collect()
    } else {
        (hi..=lo).rev().collect()
    };
    Ok(Some(
        numbers
            .into_iter()
            .map(|n| format!("{n:0width$}"))
            .collect(),
    ))
}

/// `a,{b,c},d` split at its top-level commas.
fn split_top_level(body: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// The local files `pattern` names: braces expanded, then each alternative globbed (a name
/// without glob characters is kept as written, existing or not: the caller reports a missing
/// one). Sorted within each glob, in brace order across them.
pub fn expand_local(pattern: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for alt in expand_braces(pattern)? {
        if !alt.contains(['*', '?', '[']) {
            out.push(PathBuf::from(alt));
            continue;
        }
        let paths = glob::glob(&alt)
            .map_err(|e| Error::Usage(format!("{alt}: not a valid glob pattern: {e}")))?;
        let mut matched = Vec::new();
        for p in paths {
            match p {
                Ok(p) => matched.push(p),
                Err(e) => {
                    let path = e.path().to_path_buf();
                    return Err(Error::io(path, e.into()));
                }
            }
        }
        if matched.is_empty() {
            return Err(Error::Usage(format!(
                "{alt}: the pattern matches no file; check the path (quote it so the shell leaves it to alexpipe)"
            )));
        }
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_zero_padding_and_lists_expand_left_to_right() -> Result<()> {
        assert_eq!(
            expand_braces("shard-{000..003}.tar")?,
            vec![
                "shard-000.tar",
                "shard-001.tar",
                "shard-002.tar",
                "shard-003.tar"
            ]
        );
        let wide = expand_braces("s-{000000..000099}.tar")?;
        assert_eq!(wide.len(), 100);
        assert_eq!(wide[0], "s-000000.tar");
        assert_eq!(wide[99], "s-000099.tar");
        assert_eq!(expand_braces("{8..10}")?, vec!["8", "9", "10"]);
        assert_eq!(expand_braces("{3..1}")?, vec!["3", "2", "1"]);
        assert_eq!(
            expand_braces("{train,val}-{0..1}.tar")?,
            vec!["train-0.tar", "train-1.tar", "val-0.tar", "val-1.tar"]
        );
        assert_eq!(expand_braces("a{b,{c,d}}e")?, vec!["abe", "ace", "ade"]);
        Ok(())
    }

    #[test]
    fn braces_that_are_not_patterns_stay_as_written() -> Result<()> {
        assert_eq!(expand_braces("plain.tar")?, vec!["plain.tar"]);
        assert_eq!(expand_braces("{x}.tar")?, vec!["{x}.tar"]);
        assert_eq!(expand_braces("a{1..}b")?, vec!["a{1..}b"]);
        assert_eq!(expand_braces("open{1..2")?, vec!["open{1..2"]);
        assert!(expand_braces("{0..99999999}").is_err());
        Ok(())
    }

    #[test]
    fn urls_and_patterns_are_recognised() {
        assert!(is_url("http://127.0.0.1:8000/a.tar"));
        assert!(is_url("HTTPS://example.org/a.tar"));
        assert!(!is_url("data/http.tar"));
        assert!(is_pattern("data/train-*.parquet"));
        assert!(is_pattern("s-{0..9}.tar"));
        assert!(!is_pattern("data/train.parquet"));
    }
}
