//! [`directory_extensions`]: the kinds of file a directory read as one table holds.

use std::collections::BTreeMap;
use std::path::Path;

/// The data files under `dir` (recursively, as DataFusion lists a table's directory),
/// counted by extension (`csv`, `json`, `parquet`, `csv.gz` for compressed ones).
/// Hidden files and those starting with `_` (such as `_SUCCESS`) are left out, as are
/// files without an extension.
///
/// DataFusion reads a directory in the format of the first file it lists and only the
/// files with that file's extension, so a directory of several kinds would be read in
/// part without a word: callers refuse one with more than one extension.
pub fn directory_extensions(dir: &Path) -> std::io::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else if let Some(extension) = data_extension(&name) {
                *counts.entry(extension).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

/// `csv` for `a.csv`, `csv.gz` for `a.csv.gz`; `None` without an extension.
fn data_extension(name: &str) -> Option<String> {
    const COMPRESSIONS: &[&str] = &["gz", "bz2", "xz", "zst"];
    let (stem, last) = name.rsplit_once('.')?;
    let last = last.to_ascii_lowercase();
    if stem.is_empty() {
        return None;
    }
    if COMPRESSIONS.contains(&last.as_str())
        && let Some((inner_stem, inner)) = stem.rsplit_once('.')
        && !inner_stem.is_empty()
    {
        return Some(format!("{}.{last}", inner.to_ascii_lowercase()));
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_data_files_by_extension() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("year=2024");
        std::fs::create_dir(&nested).expect("mkdir");
        for file in [
            "a.csv",
            "b.CSV",
            "c.json",
            ".hidden.csv",
            "_SUCCESS",
            "README",
        ] {
            std::fs::write(dir.path().join(file), "x").expect("write");
        }
        std::fs::write(nested.join("d.csv.gz"), "x").expect("write");
        let counts = directory_extensions(dir.path()).expect("lists");
        let expected: BTreeMap<String, usize> = [("csv", 2), ("csv.gz", 1), ("json", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(counts, expected);
    }
}
