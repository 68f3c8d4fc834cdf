//! NDJSON bytes, as a source delivers them, to record batches as soon as each line is
//! complete: no batch waits for more rows than have arrived. A line that is not a JSON
//! object of the table's columns is a [`BadLine`], handed to the source's
//! [`BadLines`] and skipped; the stream goes on.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::Decoder;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use futures::Stream;
use tokio::sync::mpsc;

/// What a source's reader sends to the decoder.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes of the stream, cut anywhere.
    Data(Bytes),
    /// The connection was made again: a line cut by the disconnect is incomplete.
    Reconnected,
    /// The source failed for good.
    Failed(DataFusionError),
}

/// A line that is not a record of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BadLine {
    pub line: String,
    pub why: String,
}

/// Where a source's bad lines go.
pub(crate) type BadLines = Arc<dyn Fn(BadLine) + Send + Sync>;

/// The records of `chunks`, in batches of at most `max_rows`: each batch holds the
/// lines complete when it is made, so a trickling source yields a batch per line.
pub(crate) fn records(
    schema: SchemaRef,
    chunks: mpsc::Receiver<Chunk>,
    max_rows: usize,
    bad: BadLines,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    let state = Lines {
        schema,
        chunks,
        pending: Vec::new(),
        max_rows: max_rows.max(1),
        bad,
        failed: None,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.ended {
                return None;
            }
            let lines = match state.next_lines().await {
                Ok(lines) => lines,
                Err(error) => {
                    state.ended = true;
                    return Some((Err(error), state));
                }
            };
            match state.decode(&lines) {
                Ok(Some(batch)) => return Some((Ok(batch), state)),
                Ok(None) => continue,
                Err(error) => {
                    state.ended = true;
                    return Some((Err(error), state));
                }
            }
        }
    })
}

struct Lines {
    schema: SchemaRef,
    chunks: mpsc::Receiver<Chunk>,
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    max_rows: usize,
    bad: BadLines,
    /// The source's failure, once the lines before it are out.
    failed: Option<DataFusionError>,
    ended: bool,
}

impl Lines {
    /// The lines completed by the next chunks: waits for one chunk, then takes what
    /// else is ready, up to `max_rows` lines. At the end of the stream, the last line
    /// even without its line break.
    async fn next_lines(&mut self) -> Result<Vec<Vec<u8>>> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let mut lines = Vec::new();
        // Lines left complete by the last chunk come first, without waiting.
        self.take_lines(&mut lines);
        let mut wait = lines.is_empty();
        while lines.len() < self.max_rows {
            let chunk = if wait {
                wait = false;
                self.chunks.recv().await
            } else {
                match self.chunks.try_recv() {
                    Ok(chunk) => Some(chunk),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match chunk {
                Some(Chunk::Data(bytes)) => {
                    self.pending.extend_from_slice(&bytes);
                    self.take_lines(&mut lines);
                }
                Some(Chunk::Reconnected) => {
                    if !self.pending.iter().all(u8::is_ascii_whitespace) {
                        let line = String::from_utf8_lossy(&self.pending).into_owned();
                        (self.bad)(BadLine {
                            line,
                            why: "the line was cut by a disconnect".to_string(),
                        });
                    }
                    self.pending.clear();
                }
                Some(Chunk::Failed(error)) if lines.is_empty() => return Err(error),
                Some(Chunk::Failed(error)) => {
                    self.failed = Some(error);
                    break;
                }
                None => {
                    self.ended = true;
                    let rest = std::mem::take(&mut self.pending);
                    if !rest.iter().all(u8::is_ascii_whitespace) {
                        lines.push(rest);
                    }
                    break;
                }
            }
        }
        Ok(lines)
    }

    /// Moves complete lines of `pending` to `lines`, until `lines` holds `max_rows`;
    /// the rest stays pending for the next batch.
    fn take_lines(&mut self, lines: &mut Vec<Vec<u8>>) {
        let mut start = 0;
        while lines.len() < self.max_rows {
            let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = &self.pending[start..start + end];
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line.to_vec());
            }
            start += end + 1;
        }
        self.pending.drain(..start);
    }

    /// One batch of the good lines of `lines`; the bad ones go to `bad`.
    fn decode(&self, lines: &[Vec<u8>]) -> Result<Option<RecordBatch>> {
        if lines.is_empty() {
            return Ok(None);
        }
        // Most often every line is good: decode them together.
        let mut decoder = self.decoder()?;
        let together = lines.iter().try_for_each(|line| feed(&mut decoder, line));
        if together.is_ok()
            && let Ok(batch) = decoder.flush()
        {
            return Ok(batch);
        }
        // Some line is bad: each alone, to keep the others.
        let mut good = Vec::new();
        for line in lines {
            let mut decoder = self.decoder()?;
            match feed(&mut decoder, line).and_then(|()| {
                decoder
                    .flush()
                    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
            }) {
                Ok(Some(batch)) => good.push(batch),
                Ok(None) => {}
                Err(error) => (self.bad)(BadLine {
                    line: String::from_utf8_lossy(line).into_owned(),
                    why: reason(&error),
                }),
            }
        }
        if good.is_empty() {
            return Ok(None);
        }
        Ok(Some(datafusion::arrow::compute::concat_batches(
            &self.schema,
            &good,
        )?))
    }

    fn decoder(&self) -> Result<Decoder> {
        Ok(ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(self.max_rows)
            .build_decoder()?)
    }
}

/// Feeds one line to `decoder`: it must be one JSON object.
fn feed(decoder: &mut Decoder, line: &[u8]) -> Result<()> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => {
            return Err(DataFusionError::Execution(
                "the line is not a JSON object".to_string(),
            ));
        }
        Err(e) => {
            return Err(DataFusionError::Execution(format!(
                "the line is not JSON: {e}"
            )));
        }
    }
    let mut with_end = line.to_vec();
    with_end.push(b'\n');
    let read = decoder.decode(&with_end)?;
    if read != with_end.len() {
        return Err(DataFusionError::Execution(
            "the line holds more than one record".to_string(),
        ));
    }
    Ok(())
}

/// Why a line was refused, without DataFusion's wrapping.
fn reason(error: &DataFusionError) -> String {
    match error {
        DataFusionError::Execution(why) => why.clone(),
        DataFusionError::ArrowError(e, _) => e.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use futures::StreamExt;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("text", DataType::Utf8, true),
        ]))
    }

    /// The ids of the batches `chunks` decode to, batch by batch, and the bad lines.
    async fn decode(chunks: Vec<Chunk>) -> (Vec<Vec<i64>>, Vec<BadLine>) {
        let (tx, rx) = mpsc::channel(chunks.len().max(1));
        for chunk in chunks {
            tx.send(chunk).await.unwrap();
        }
        drop(tx);
        let bad = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bad);
        let batches: Vec<RecordBatch> = records(
            schema(),
            rx,
            100,
            Arc::new(move |line| sink.lock().unwrap().push(line)),
        )
        .map(|b| b.unwrap())
        .collect()
        .await;
        let ids = batches
            .iter()
            .map(|b| {
                let ids = b.column(0).as_primitive::<Int64Type>();
                (0..ids.len()).map(|i| ids.value(i)).collect()
            })
            .collect();
        let bad = bad.lock().unwrap().clone();
        (ids, bad)
    }

    fn data(text: &str) -> Chunk {
        Chunk::Data(Bytes::from(text.to_string()))
    }

    #[tokio::test]
    async fn lines_cut_across_chunks_are_joined() {
        let (ids, bad) = decode(vec![
            data("{\"id\": 1, \"text\": \"a\"}\n{\"id\""),
            data(": 2, \"text\": \"b\"}\n"),
            data("{\"id\": 3}"),
        ])
        .await;
        assert_eq!(ids.concat(), [1, 2, 3]);
        assert!(bad.is_empty());
    }

    #[tokio::test]
    async fn a_bad_line_is_reported_and_the_rest_kept() {
        let (ids, bad) = decode(vec![data(
            "{\"id\": 1}\nnot json\n[1, 2]\n{\"id\": \"x\"}\n{\"id\": 5}\n",
        )])
        .await;
        assert_eq!(ids.concat(), [1, 5]);
        let lines: Vec<&str> = bad.iter().map(|b| b.line.as_str()).collect();
        assert_eq!(lines, ["not json", "[1, 2]", "{\"id\": \"x\"}"]);
        assert!(bad[0].why.contains("not JSON"), "{:?}", bad[0]);
        assert!(bad[1].why.contains("not a JSON object"), "{:?}", bad[1]);
    }

    #[tokio::test]
    async fn a_chunk_of_many_lines_gives_batches_of_at_most_max_rows() {
        let many: String = (0..250).map(|i| format!("{{\"id\": {i}}}\n")).collect();
        let (tx, rx) = mpsc::channel(2);
        tx.send(data(&many)).await.unwrap();
        drop(tx);
        let batches: Vec<RecordBatch> = records(schema(), rx, 100, Arc::new(|_| {}))
            .map(|b| b.unwrap())
            .collect()
            .await;
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[tokio::test]
    async fn a_line_cut_by_a_reconnect_is_bad() {
        let (ids, bad) = decode(vec![
            data("{\"id\": 1}\n{\"id\": 2"),
            Chunk::Reconnected,
            data("{\"id\": 3}\n"),
        ])
        .await;
        assert_eq!(ids.concat(), [1, 3]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].why.contains("disconnect"));
    }

    #[tokio::test]
    async fn a_failed_source_ends_the_stream_with_its_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(data("{\"id\": 1}\n")).await.unwrap();
        tx.send(Chunk::Failed(DataFusionError::Execution("gone".into())))
            .await
            .unwrap();
        let results: Vec<Result<RecordBatch>> =
            records(schema(), rx, 10, Arc::new(|_| {})).collect().await;
        assert!(results[0].is_ok());
        assert!(results.last().unwrap().as_ref().is_err());
    }
}
