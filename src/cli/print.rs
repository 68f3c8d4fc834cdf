//! Printing query results as a table, CSV, a JSON array or newline-delimited JSON.
//! CSV and JSON stream batch by batch; the table waits for all rows to align them.
//! A reader that closes the output early (`blossom ... | head -1`) stops the statement
//! with [`OutputClosed`], which `blossom` treats as a normal end.

use std::fmt;
use std::io::Write;

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::args::{MaxRows, OutputFormat, PrintOptions};

/// The output was closed by its reader (a broken pipe) before every row was printed:
/// the statement stops, and `blossom` ends normally (exit code 0, no message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputClosed;

impl fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the output was closed before every row was printed")
    }
}

impl std::error::Error for OutputClosed {}

/// Whether an I/O error says the reader of the output has gone.
pub(crate) fn is_broken_pipe(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::BrokenPipe
}

/// A writer that remembers whether its reader went away: the CSV writer reports I/O
/// errors as text, so the kind would be lost on the way out.
struct Watched<'a> {
    out: &'a mut dyn Write,
    closed: bool,
}

impl Watched<'_> {
    fn seen<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(error) = &result
            && is_broken_pipe(error)
        {
            self.closed = true;
        }
        result
    }
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.out.write(buf);
        self.seen(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.out.flush();
        self.seen(result)
    }
}

/// Prints every batch of `stream` to `out` as `options` say; returns the number of rows.
/// Fails with [`OutputClosed`] (inside a [`DataFusionError::External`]) when the
/// reader of `out` went away.
pub async fn print_stream(
    stream: SendableRecordBatchStream,
    options: &PrintOptions,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut watched = Watched { out, closed: false };
    let result = print_to(stream, options, &mut watched).await;
    if watched.closed {
        return Err(DataFusionError::External(Box::new(OutputClosed)));
    }
    result
}

async fn print_to(
    mut stream: SendableRecordBatchStream,
    options: &PrintOptions,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
    if stream.schema().fields().is_empty() {
        // SET, CREATE and the like: nothing to print.
        while let Some(batch) = stream.next().await {
            batch?;
        }
        return Ok(0);
    }
    let mut rows = 0u64;
    match options.format {
        OutputFormat::Table => {
            let limit = match options.maxrows {
                MaxRows::Unlimited => usize::MAX,
                MaxRows::Limited(n) => n,
            };
            let mut shown = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let room = limit.saturating_sub(rows as usize);
                if room > 0 {
                    shown.push(batch.slice(0, batch.num_rows().min(room)));
                }
                rows += batch.num_rows() as u64;
            }
            if shown.is_empty() {
                shown.push(RecordBatch::new_empty(stream.schema()));
            }
            writeln!(out, "{}", pretty_format_batches(&shown)?).map_err(io)?;
            if rows as usize > limit {
                writeln!(
                    out,
                    "{rows} row(s) fetched. (First {limit} displayed. Use --maxrows to adjust)"
                )
                .map_err(io)?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            let mut wrote = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
                wrote = true;
            }
            if !wrote {
                writer.write(&RecordBatch::new_empty(stream.schema()))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = ArrayWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = LineDelimitedWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
    }
    out.flush().map_err(io)?;
    Ok(rows)
}
