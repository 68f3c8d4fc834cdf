//! [`FileTables`]: opens a table name that looks like a path as a listing table, with
//! errors that name the file and say what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, plan_datafusion_err, plan_err};
use datafusion::datasource::listing::{
    ListingTable, ListingTableConfig, ListingTableConfigExt, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;

use super::{directory_extensions, looks_like_path, scan_csv_quotes};

/// Files larger than this are not scanned for unclosed quotes before they are read.
const MAX_QUOTE_SCAN_BYTES: u64 = 512 * 1024 * 1024;

/// Reads the current state of the session the catalog belongs to.
type StateReader = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

/// Opens the files a session's queries name (see [`super::FileTableCatalogList`]).
///
/// ```sql
/// SELECT count(*) FROM 'data/reviews.csv';   -- the file
/// SELECT count(*) FROM 'data/';              -- every file of the directory (one format)
/// SELECT count(*) FROM data;                 -- a table named data, never the folder
/// ```
#[derive(Default)]
pub struct FileTables {
    session: OnceLock<StateReader>,
}

impl std::fmt::Debug for FileTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTables")
            .field("attached", &self.session.get().is_some())
            .finish()
    }
}

impl FileTables {
    /// Reads files with the settings of `ctx`'s session (its object stores, formats
    /// and CSV options), as they are when a query runs.
    pub fn attach(&self, ctx: &SessionContext) {
        let session = ctx.state_weak_ref();
        // Only the first session counts: the catalog belongs to it.
        let _ = self.session.set(Box::new(move || {
            session.upgrade().map(|state| state.read().clone())
        }));
    }

    /// The table for `name` when it looks like a path (`None` otherwise, so the name
    /// is "not found" as in plain DataFusion), or an error naming the file.
    ///
    /// `None` too once the session is gone: `enable_url_table()` on a blossom session
    /// rebuilds its state around this catalog, and DataFusion's own URL tables of the
    /// new state then open the files (with DataFusion's rules, which the caller asked
    /// for), so the call is harmless.
    pub async fn open(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !looks_like_path(name) {
            return Ok(None);
        }
        let Some(state) = self.session.get().and_then(|read| read()) else {
            tracing::debug!("{name}: the session of this catalog is gone; not opened here");
            return Ok(None);
        };
        let url = ListingTableUrl::parse(name)
            .map_err(|e| plan_datafusion_err!("cannot read the file '{name}': {e}"))?;
        if url.scheme() == "file" {
            check_local(name, &state)?;
        }
        let named = |e: DataFusionError| {
            plan_datafusion_err!(
                "cannot read the file '{name}': {e}{}",
                json_array_hint(name)
            )
        };
        let config = ListingTableConfig::new(url)
            .infer_options(&state)
            .await
            .map_err(named)?
            .infer_partitions_from_path(&state)
            .await
            .map_err(named)?
            .infer_schema(&state)
            .await
            .map_err(named)?;
        if config
            .file_schema
            .as_ref()
            .is_some_and(|schema| schema.fields().is_empty())
        {
            return plan_err!("cannot read the file '{name}': it has no columns (an empty file?)");
        }
        let table = ListingTable::try_new(config).map_err(named)?;
        Ok(Some(Arc::new(table)))
    }
}

/// Checks a local path before DataFusion lists it: it exists, a directory holds files of
/// one kind, a CSV file has no quote that swallows the rest of the file.
fn check_local(name: &str, state: &SessionState) -> Result<()> {
    let written = name.strip_prefix("file://").unwrap_or(name);
    if written.contains(['*', '?', '[']) {
        return Ok(());
    }
    let path = Path::new(written);
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing(name, path));
        }
        Err(e) => return plan_err!("cannot read the file '{name}': {e}"),
    };
    if metadata.is_dir() {
        let counts = directory_extensions(path)
            .map_err(|e| plan_datafusion_err!("cannot list the directory '{name}': {e}"))?;
        if counts.len() > 1 {
            let listed: Vec<String> = counts
                .iter()
                .map(|(extension, n)| format!("{n} .{extension}"))
                .collect();
            let first = counts.keys().next().map(String::as_str).unwrap_or("csv");
            let dir = written.trim_end_matches('/');
            return plan_err!(
                "the directory '{name}' holds files of several kinds ({}), and a table \
                 reads one kind only: name them, e.g. '{dir}/*.{first}'",
                listed.join(", ")
            );
        }
        return Ok(());
    }
    let lower = written.to_ascii_lowercase();
    if (lower.ends_with(".csv") || lower.ends_with(".tsv"))
        && metadata.len() <= MAX_QUOTE_SCAN_BYTES
    {
        check_csv_quotes(name, path, state)?;
    }
    Ok(())
}

/// For a local `.json` file that holds a JSON array: why it cannot be read.
fn json_array_hint(name: &str) -> &'static str {
    use std::io::Read;
    let written = name.strip_prefix("file://").unwrap_or(name);
    if !written.to_ascii_lowercase().ends_with(".json") {
        return "";
    }
    let mut start = [0u8; 256];
    let read = std::fs::File::open(written).and_then(|mut f| f.read(&mut start));
    match read {
        Ok(n) if start[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') => {
            "; the file holds a JSON array, but JSON files are read as newline-delimited \
             JSON, one object per line"
        }
        _ => "",
    }
}

/// The error for a path that does not exist: the path as written, and where it was
/// looked for.
fn missing(name: &str, path: &Path) -> DataFusionError {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if path.is_absolute() {
        plan_datafusion_err!("the file '{name}' does not exist")
    } else {
        plan_datafusion_err!(
            "the file '{name}' does not exist (looked for {}, relative to the working \
             directory {})",
            cwd.join(path).display(),
            cwd.display()
        )
    }
}

/// Refuses a CSV file with a quote that is never closed, and warns about quoted values
/// over several lines while `newlines_in_values` is off (the reader may then split
/// them).
fn check_csv_quotes(name: &str, path: &Path, state: &SessionState) -> Result<()> {
    let options = &state.default_table_options().csv;
    let file = std::fs::File::open(path)
        .map_err(|e| plan_datafusion_err!("cannot read the file '{name}': {e}"))?;
    let delimiter = if name.to_ascii_lowercase().ends_with(".tsv") {
        b'\t'
    } else {
        options.delimiter
    };
    let scan = scan_csv_quotes(
        std::io::BufReader::new(file),
        delimiter,
        options.quote,
        options.escape,
    )
    .map_err(|e| plan_datafusion_err!("cannot read the file '{name}': {e}"))?;
    if let Some(line) = scan.unclosed_at {
        return plan_err!(
            "cannot read the file '{name}': the quote opened on line {line} is never \
             closed, so every line after it would be read into one value; close the \
             quote, or read the file with another quote character"
        );
    }
    if let Some((from, to)) = scan.first_multiline
        && !options
            .newlines_in_values
            .unwrap_or(state.config_options().catalog.newlines_in_values)
    {
        tracing::warn!(
            "{name}: {} quoted value(s) hold line breaks, the first from line {from} to \
             line {to}; each is read as one value (SET \
             datafusion.catalog.newlines_in_values = true to read such files reliably)",
            scan.multiline_values
        );
    }
    Ok(())
}
