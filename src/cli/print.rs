//! Printing query results as a table, CSV, a JSON array or newline-delimited JSON.
//! CSV and JSON stream batch by batch; the table waits for all rows to align them.

use std::io::Write;

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::OutputFormat;

/// Prints every batch of `stream` to `out` in `format`.
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
    if stream.schema().fields().is_empty() {
        // SET, CREATE and the like: nothing to print.
        while let Some(batch) = stream.next().await {
            batch?;
        }
        return Ok(());
    }
    match format {
        OutputFormat::Table => {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch?);
            }
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(stream.schema()));
            }
            writeln!(out, "{}", pretty_format_batches(&batches)?).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            let mut wrote = false;
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
                wrote = true;
            }
            if !wrote {
                writer.write(&RecordBatch::new_empty(stream.schema()))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = ArrayWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out).map_err(io)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = LineDelimitedWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
            }
            writer.finish()?;
        }
    }
    out.flush().map_err(io)
}
