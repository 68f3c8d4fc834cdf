//! `blossom convert IN OUT --add "sentiment(text) AS sentiment" [--where "..."]`: one
//! file (or a directory of files) of Parquet, CSV or newline-delimited JSON into one
//! file of any of them, adding computed columns on the way.
//!
//! The input is registered as the table `input`, and the conversion is one DataFusion
//! statement, `COPY (SELECT *, <adds> FROM input WHERE <condition>) TO '<temp>'`, run
//! through [`run_sql`] so that progress, the summary, `--max-failed-rows` and the run
//! report work as for any statement. COPY streams batch by batch, so memory stays
//! bounded whatever the input's size. The rows are read in one partition, so the output
//! keeps the input's row order.
//!
//! The output is written atomically: to a temporary file next to `OUT` named
//! `.<name>.partial-<pid>.<ext>` (keeping the format's extension makes DataFusion write
//! one file, not a directory), renamed over `OUT` only once the statement succeeded.
//! On any failure (a query error, a row failing with `on_error = 'fail'`, too many
//! failed rows, Ctrl-C or SIGTERM, a panic) the temporary file is removed, so no partial
//! output is left and an existing `OUT` stays as it was.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::args::{ConvertArgs, FileFormat, OutputFormat, PrintOptions};
use super::error::CliError;
use super::run::{Run, run_sql};
use super::signal::is_interrupt;

/// The name the input is registered under, for `--add` and `--where` to refer to.
const INPUT_TABLE: &str = "input";

/// Converts `args.input` into `args.output`, adding the `--add` columns to every row the
/// `--where` condition keeps, and prints `blossom: wrote N rows to OUT` on stderr
/// (unless quiet).
///
/// Formats come from the extensions (`.parquet`, `.csv`, `.json`, `.ndjson`, `.jsonl`)
/// or from `--input-format` / `--output-format`; an unknown extension without its flag is
/// a usage error (exit code 2), a missing input a query error (exit code 1).
///
/// ```no_run
/// # async fn f() -> Result<(), blossom_sql::cli::CliError> {
/// use clap::Parser;
///
/// // `blossom --simulate convert data/reviews.csv out/reviews.parquet ...`, which
/// // `blossom_sql::cli::run` hands to this function:
/// let args = blossom_sql::cli::Args::parse_from([
///     "blossom", "--simulate", "convert", "data/reviews.csv", "out/reviews.parquet",
///     "--add", "sentiment(text) AS sentiment", "--where", "lang = 'en'",
/// ]);
/// blossom_sql::cli::run(args).await?;
/// # Ok(()) }
/// ```
pub async fn run(
    ctx: &SessionContext,
    args: &ConvertArgs,
    options: &PrintOptions,
    run: &mut Run,
) -> Result<(), CliError> {
    let input = Input::resolve(&args.input, args.input_format)?;
    let output_format = match args.output_format {
        Some(format) => format,
        None => format_from_extension(&args.output).ok_or_else(|| {
            CliError::usage(format!(
                "cannot tell the format of the output {} from its extension; \
                 use .parquet, .csv, .json, .ndjson or .jsonl, or --output-format",
                args.output.display()
            ))
        })?,
    };
    let mut temp = TempOutput::prepare(&args.output, output_format)?;

    // One partition: the output keeps the input's row order (AI calls still run
    // `blossom.max_concurrency` at a time within a partition).
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    let columns = input.register(ctx).await?;
    let sql = copy_sql(args, &columns, temp.path(), output_format)?;

    // COPY answers one row, the number of rows written: capture it instead of printing.
    let capture = PrintOptions {
        format: OutputFormat::Csv,
        ..*options
    };
    let mut answer = Vec::new();
    // Ctrl-C or SIGTERM cancels the statement (run_sql drops it); `temp` is removed
    // when dropped.
    run_sql(ctx, &sql, &capture, &mut answer, run)
        .await
        .map_err(|e| CliError {
            code: e.code,
            message: if is_interrupt(e.code) {
                format!("{}; {} was not written", e.message, args.output.display())
            } else {
                format!(
                    "converting {} to {} failed, so nothing was written to {}: {}",
                    args.input.display(),
                    args.output.display(),
                    args.output.display(),
                    e.message
                )
            },
        })?;
    let rows = written_rows(&answer);
    temp.commit()?;
    if !options.quiet {
        match rows {
            Some(rows) => eprintln!("blossom: wrote {rows} rows to {}", args.output.display()),
            None => eprintln!("blossom: wrote {}", args.output.display()),
        }
    }
    Ok(())
}

/// The format an extension names, case-insensitively.
fn format_from_extension(path: &Path) -> Option<FileFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "parquet" => Some(FileFormat::Parquet),
        "csv" => Some(FileFormat::Csv),
        "json" | "ndjson" | "jsonl" => Some(FileFormat::Json),
        _ => None,
    }
}

/// The extension a format is written with, and its `STORED AS` name.
fn format_names(format: FileFormat) -> (&'static str, &'static str) {
    match format {
        FileFormat::Parquet => ("parquet", "PARQUET"),
        FileFormat::Csv => ("csv", "CSV"),
        FileFormat::Json => ("json", "JSON"),
    }
}

/// A path as the UTF-8 text SQL needs.
fn path_text<'a>(path: &'a Path, what: &str) -> Result<&'a str, CliError> {
    path.to_str().ok_or_else(|| {
        CliError::usage(format!(
            "the {what} path {} is not valid UTF-8",
            path.display()
        ))
    })
}

/// The input: where it is, its format, and the extension its files are selected by.
#[derive(Debug)]
struct Input {
    path: String,
    format: FileFormat,
    /// `.csv` and the like; empty selects every file.
    extension: String,
}

impl Input {
    /// Checks that `path` exists and works out its format.
    fn resolve(path: &Path, flag: Option<FileFormat>) -> Result<Self, CliError> {
        let metadata = std::fs::metadata(path).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_string()
            } else {
                format!("cannot be read: {e}")
            };
            CliError::query(format!("the input {} {why}", path.display()))
        })?;
        let text = path_text(path, "input")?.to_string();
        if !metadata.is_dir() {
            let format = match flag.or_else(|| format_from_extension(path)) {
                Some(format) => format,
                None => {
                    return Err(CliError::usage(format!(
                        "cannot tell the format of the input {} from its extension; \
                         use .parquet, .csv, .json, .ndjson or .jsonl, or --input-format",
                        path.display()
                    )));
                }
            };
            // DataFusion selects files by their ending, even a single file.
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| format!(".{e}"))
                .unwrap_or_default();
            return Ok(Self {
                path: text,
                format,
                extension,
            });
        }
        let (format, extension) = directory_format(path, flag)?;
        // A trailing separator makes DataFusion list the directory.
        let path = if text.ends_with(std::path::MAIN_SEPARATOR) {
            text
        } else {
            format!("{text}{}", std::path::MAIN_SEPARATOR)
        };
        Ok(Self {
            path,
            format,
            extension,
        })
    }

    /// Registers the input as the table `input`, and returns the SELECT list that keeps
    /// its columns in the file's order: `*`, or for JSON (whose inferred schema is
    /// sorted by name) the names in the order the first record writes them.
    async fn register(&self, ctx: &SessionContext) -> Result<String, CliError> {
        let extension = self.extension.as_str();
        let result = match self.format {
            FileFormat::Parquet => {
                let read = ParquetReadOptions::new().file_extension(extension);
                ctx.register_parquet(INPUT_TABLE, &self.path, read).await
            }
            FileFormat::Csv => {
                let read = CsvReadOptions::new()
                    .has_header(true)
                    .newlines_in_values(true)
                    .file_extension(extension);
                ctx.register_csv(INPUT_TABLE, &self.path, read).await
            }
            FileFormat::Json => {
                let read = JsonReadOptions::default().file_extension(extension);
                ctx.register_json(INPUT_TABLE, &self.path, read).await
            }
        };
        result.map_err(|e| CliError::query(format!("cannot read the input {}: {e}", self.path)))?;
        if self.format != FileFormat::Json {
            return Ok("*".to_string());
        }
        let table = ctx.table(INPUT_TABLE).await?;
        let inferred: Vec<&str> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let written = self
            .first_file()
            .and_then(|file| first_record_keys(&file))
            .unwrap_or_default();
        let mut ordered: Vec<&str> = Vec::with_capacity(inferred.len());
        for name in written
            .iter()
            .map(String::as_str)
            .chain(inferred.iter().copied())
        {
            if inferred.contains(&name) && !ordered.contains(&name) {
                ordered.push(name);
            }
        }
        if ordered == inferred {
            return Ok("*".to_string());
        }
        Ok(ordered
            .iter()
            .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// The input file, or the first (by name) of the directory's selected files.
    fn first_file(&self) -> Option<PathBuf> {
        let path = PathBuf::from(&self.path);
        if !path.is_dir() {
            return Some(path);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|file| {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                file.is_file()
                    && !name.starts_with('.')
                    && !name.starts_with('_')
                    && name.ends_with(self.extension.as_str())
            })
            .collect();
        files.sort();
        files.into_iter().next()
    }
}

/// The keys of the first JSON object in `path`, in the order they are written (`None`
/// when its first line is not an object of at most 1 MiB).
fn first_record_keys(path: &Path) -> Option<Vec<String>> {
    use std::io::{BufRead, Read};

    struct Keys(Vec<String>);

    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;

                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }

                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }

    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file.take(1 << 20));
    let mut line = String::new();
    while line.trim().is_empty() {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
    }
    serde_json::from_str::<Keys>(&line).ok().map(|keys| keys.0)
}

/// The format of a directory's files, and the extension that selects them: the files
/// (not starting with `.` or `_`) must share one extension, unless `flag` says the format.
fn directory_format(
    dir: &Path,
    flag: Option<FileFormat>,
) -> Result<(FileFormat, String), CliError> {
    let cannot = |e: std::io::Error| {
        CliError::query(format!(
            "cannot list the input directory {}: {e}",
            dir.display()
        ))
    };
    let mut extensions = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') || !entry.path().is_file() {
            continue;
        }
        let extension = Path::new(name.as_ref())
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        extensions.insert(extension);
    }
    let shared = match extensions.len() {
        0 => {
            return Err(CliError::query(format!(
                "the input directory {} has no files",
                dir.display()
            )));
        }
        1 => extensions.pop_first().filter(|e| !e.is_empty()),
        _ => None,
    };
    match (flag, shared) {
        (Some(format), Some(extension)) => Ok((format, format!(".{extension}"))),
        // Mixed endings: read every file as the format the flag names.
        (Some(format), None) => Ok((format, String::new())),
        (None, Some(extension)) => {
            match format_from_extension(Path::new(&format!("x.{extension}"))) {
                Some(format) => Ok((format, format!(".{extension}"))),
                None => Err(CliError::usage(format!(
                    "cannot tell the format of the files in {} from their extension .{extension}; \
                     use --input-format",
                    dir.display()
                ))),
            }
        }
        (None, None) => Err(CliError::usage(format!(
            "the files in {} do not share one extension ({}); use --input-format",
            dir.display(),
            extensions
                .iter()
                .map(|e| if e.is_empty() {
                    "none".to_string()
                } else {
                    format!(".{e}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The conversion statement, checked to be one COPY (so `--add` and `--where` cannot
/// add statements of their own).
fn copy_sql(
    args: &ConvertArgs,
    columns: &str,
    temp: &Path,
    format: FileFormat,
) -> Result<String, CliError> {
    let target = path_text(temp, "output")?.replace('\'', "''");
    // User SQL goes on lines of its own, so a trailing `-- comment` ends there.
    let mut select = format!("SELECT {columns}");
    for add in &args.add {
        select.push_str(",\n");
        select.push_str(add);
        select.push('\n');
    }
    select.push_str(&format!(" FROM \"{INPUT_TABLE}\""));
    if let Some(filter) = &args.filter {
        select.push_str(&format!(" WHERE (\n{filter}\n)"));
    }
    let stored = format_names(format).1;
    let options = match format {
        FileFormat::Csv => " OPTIONS ('format.has_header' 'true')",
        FileFormat::Parquet | FileFormat::Json => "",
    };
    let sql = format!("COPY ({select}) TO '{target}' STORED AS {stored}{options}");
    let statements = DFParser::parse_sql_with_dialect(&sql, &GenericDialect {})
        .map_err(|e| CliError::usage(format!("--add or --where is not valid SQL: {e}")))?;
    match statements.front() {
        Some(Statement::CopyTo(_)) if statements.len() == 1 => Ok(sql),
        _ => Err(CliError::usage(
            "--add and --where take SQL expressions, not statements",
        )),
    }
}

/// The row count in COPY's answer (CSV: a header, then the count).
fn written_rows(answer: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(answer).ok()?;
    text.lines().nth(1)?.trim().parse().ok()
}

/// The temporary file the output is written to; removed when dropped uncommitted.
#[derive(Debug)]
struct TempOutput {
    /// Where the output goes in the end.
    target: PathBuf,
    /// `<dir of target>/.<name>.partial-<pid>.<ext>`, absolute.
    temp: PathBuf,
    committed: bool,
}

impl TempOutput {
    /// Checks the output path and picks the temporary file next to it (creating the
    /// output's directory if needed).
    fn prepare(target: &Path, format: FileFormat) -> Result<Self, CliError> {
        let name = target.file_name().ok_or_else(|| {
            CliError::usage(format!(
                "the output {} is not a file name",
                target.display()
            ))
        })?;
        path_text(target, "output")?;
        if target.is_dir() {
            return Err(CliError::usage(format!(
                "the output {} is a directory; give a file name",
                target.display()
            )));
        }
        if name
            .to_string_lossy()
            .contains(['*', '?', '[', ']', '{', '}'])
        {
            return Err(CliError::usage(format!(
                "the output {} has a glob character (* ? [ ] {{ }}) in its name, \
                 which DataFusion reads as a pattern",
                target.display()
            )));
        }
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::query(format!(
                "cannot create the output directory {}: {e}",
                dir.display()
            ))
        })?;
        let dir = std::path::absolute(&dir).map_err(|e| {
            CliError::query(format!(
                "cannot resolve the output directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".partial-{}.{}",
            std::process::id(),
            format_names(format).0
        ));
        Ok(Self {
            target: target.to_path_buf(),
            temp: dir.join(temp_name),
            committed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.temp
    }

    /// Moves the finished file over the target.
    fn commit(&mut self) -> Result<(), CliError> {
        if !self.temp.is_file() {
            return Err(CliError::query(format!(
                "the conversion finished but wrote no file for {}",
                self.target.display()
            )));
        }
        std::fs::rename(&self.temp, &self.target).map_err(|e| {
            CliError::query(format!(
                "cannot move the output into place at {}: {e}",
                self.target.display()
            ))
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // The file itself, and the object store's staging files (`<temp>#<n>`).
        crate::execution::remove_with_staging_files(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(add: &[&str], filter: Option<&str>) -> ConvertArgs {
        ConvertArgs {
            input: PathBuf::from("in.csv"),
            output: PathBuf::from("out.parquet"),
            add: add.iter().map(|s| s.to_string()).collect(),
            filter: filter.map(str::to_string),
            input_format: None,
            output_format: None,
        }
    }

    #[test]
    fn formats_come_from_extensions() {
        for (name, format) in [
            ("a.parquet", Some(FileFormat::Parquet)),
            ("a.CSV", Some(FileFormat::Csv)),
            ("a.json", Some(FileFormat::Json)),
            ("a.ndjson", Some(FileFormat::Json)),
            ("a.jsonl", Some(FileFormat::Json)),
            ("a.txt", None),
            ("a", None),
        ] {
            assert_eq!(format_from_extension(Path::new(name)), format, "{name}");
        }
    }

    #[test]
    fn the_statement_is_one_copy_with_quotes_doubled() {
        let sql = copy_sql(
            &args(&["sentiment(text) AS s -- the mood"], Some("lang = 'en'")),
            "*",
            Path::new("/tmp/it's/.o.parquet.partial-1.parquet"),
            FileFormat::Parquet,
        )
        .expect("valid");
        assert!(
            sql.contains("TO '/tmp/it''s/.o.parquet.partial-1.parquet'"),
            "{sql}"
        );
        assert!(sql.contains("WHERE (\nlang = 'en'\n)"), "{sql}");
        assert!(sql.ends_with("STORED AS PARQUET"), "{sql}");
    }

    #[test]
    fn statements_in_expressions_are_refused() {
        let err = copy_sql(
            &args(&[], Some("true); SELECT (1")),
            "*",
            Path::new("/tmp/o.csv"),
            FileFormat::Csv,
        )
        .expect_err("two statements");
        assert_eq!(err.code, super::super::error::EXIT_USAGE);
    }

    #[test]
    fn json_keys_keep_their_written_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.json");
        std::fs::write(
            &file,
            "\n{\"b\": {\"x\": [1]}, \"a\": 2, \"c\": null}\n{\"d\": 1}\n",
        )
        .expect("write");
        assert_eq!(
            first_record_keys(&file),
            Some(vec!["b".to_string(), "a".to_string(), "c".to_string()])
        );
        std::fs::write(&file, "[1, 2]\n").expect("write");
        assert_eq!(first_record_keys(&file), None);
    }

    #[test]
    fn the_row_count_is_read_from_the_answer() {
        assert_eq!(written_rows(b"count\n300\n"), Some(300));
        assert_eq!(written_rows(b"count\n"), None);
    }

    #[test]
    fn an_uncommitted_temp_file_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.csv");
        let temp = TempOutput::prepare(&target, FileFormat::Csv).expect("prepared");
        std::fs::write(temp.path(), "partial").expect("write");
        let mut staged = temp.path().as_os_str().to_owned();
        staged.push("#1");
        std::fs::write(&staged, "staged").expect("write");
        drop(temp);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
