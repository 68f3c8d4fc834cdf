//! Multi-row packing (`blossom.pack_rows`): the rows of a batch that share an
//! instruction are asked up to `pack_rows` to a request. Each row keeps its own place in
//! the query's memo and the response cache, so deduplication, resuming and estimates
//! work per row as without packing. A packed answer that leaves a row out, repeats or
//! invents an id, or gives a value the function refuses, is never assigned to a row:
//! those rows are asked again in packs half the size, down to requests of their own.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, join, join_all};
use tracing::Instrument;

use super::ai_call::{AnswerResult, CallRuntime, Row};
use super::claim::{Ask, claim};
use crate::dispatch::CallError;
use crate::functions::pack::{MAX_PACKED_TEXT_CHARS, packed_messages, parse_packed_answer};
use crate::provider::{ChatAnswer, ChatMessage, ChatRequest};
use crate::query_metrics::FunctionMetrics;

/// Extra answer tokens allowed per packed row for its id and JSON punctuation, when
/// `max_answer_tokens` limits the answer.
const PACK_TOKENS_PER_ROW: u32 = 16;

/// Whether an answer is a value the function accepts.
pub(super) type Validate<'a> = dyn Fn(&str) -> bool + Send + Sync + 'a;

/// The answers of `rows` (`None` where a row needs none), packing the rows that can be.
pub(super) async fn answers(
    rows: &[Option<Row>],
    valid: &Validate<'_>,
    runtime: &CallRuntime,
    metrics: &Arc<FunctionMetrics>,
) -> Vec<Option<AnswerResult>> {
    let mut pending: Vec<Option<BoxFuture<'_, AnswerResult>>> = Vec::with_capacity(rows.len());
    let mut to_ask: Vec<Unanswered> = Vec::new();
    for row in rows {
        let Some(row) = row else {
            pending.push(None);
            continue;
        };
        let Some((instruction, text)) = split(&row.request) else {
            pending.push(Some(runtime.answer(&row.request, metrics).boxed()));
            continue;
        };
        let keys = match runtime.keys(&row.request) {
            Ok(keys) => keys,
            Err(error) => {
                pending.push(Some(futures::future::ready(Err(error)).boxed()));
                continue;
            }
        };
        let claim = claim(runtime, keys, metrics);
        pending.push(Some(claim.answer));
        if let Some(ask) = claim.ask {
            to_ask.push(Unanswered {
                request: row.request.clone(),
                instruction,
                text,
                ask,
            });
        }
    }
    let pack_rows = runtime.settings.pack_rows;
    let packs = group(to_ask, pack_rows);
    let asking = join_all(
        packs
            .into_iter()
            .map(|pack| ask(pack, pack_rows, valid, runtime, metrics)),
    );
    let answering = join_all(pending.into_iter().map(|answer| async move {
        match answer {
            Some(answer) => Some(answer.await),
            None => None,
        }
    }));
    join(asking, answering).await.1
}

/// A row no earlier request answers, waiting for its pack.
struct Unanswered {
    /// The row's own request, for when it is asked alone.
    request: ChatRequest,
    /// The messages before the row's text: what rows of one pack share.
    instruction: Vec<ChatMessage>,
    text: String,
    ask: Ask,
}

impl Unanswered {
    fn answer(self, runtime: &CallRuntime, result: Result<ChatAnswer, CallError>) {
        self.ask.answer(runtime, result);
    }
}

/// A request's instruction and row text, when it has the shape packing needs: leading
/// messages, then the row's text (not too long) as the last, user, message.
fn split(request: &ChatRequest) -> Option<(Vec<ChatMessage>, String)> {
    let (last, instruction) = request.messages.split_last()?;
    let packable = last.role == "user"
        && !instruction.is_empty()
        && last.content.chars().count() <= MAX_PACKED_TEXT_CHARS;
    packable.then(|| (instruction.to_vec(), last.content.clone()))
}

/// The rows in packs of at most `size` rows sharing one instruction, in row order.
fn group(rows: Vec<Unanswered>, size: usize) -> Vec<Vec<Unanswered>> {
    let mut by_instruction: Vec<Vec<Unanswered>> = Vec::new();
    let mut index: HashMap<(String, Option<u32>, String), usize> = HashMap::new();
    for row in rows {
        let key = (
            row.request.model.clone(),
            row.request.max_tokens,
            serde_json::to_string(&(&row.instruction, row.request.temperature)).unwrap_or_default(),
        );
        let slot = *index.entry(key).or_insert_with(|| {
            by_instruction.push(Vec::new());
            by_instruction.len() - 1
        });
        by_instruction[slot].push(row);
    }
    let mut packs = Vec::new();
    for rows in by_instruction {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            packs.push(rows.by_ref().take(size.max(1)).collect());
        }
    }
    packs
}

/// Asks one pack (of at most `size` rows) and answers its rows; rows the answer does not
/// validly cover are asked again in packs of half the size.
fn ask<'a>(
    pack: Vec<Unanswered>,
    size: usize,
    valid: &'a Validate<'a>,
    runtime: &'a CallRuntime,
    metrics: &'a Arc<FunctionMetrics>,
) -> BoxFuture<'a, ()> {
    async move {
        if pack.len() == 1 {
            for row in pack {
                ask_alone(row, runtime, metrics).await;
            }
            return;
        }
        let texts: Vec<&str> = pack.iter().map(|row| row.text.as_str()).collect();
        let first = &pack[0].request;
        let Some(messages) = packed_messages(&pack[0].instruction, &texts) else {
            for row in pack {
                ask_alone(row, runtime, metrics).await;
            }
            return;
        };
        let rows = pack.len() as u32;
        let request = ChatRequest {
            model: first.model.clone(),
            messages,
            temperature: first.temperature,
            max_tokens: first
                .max_tokens
                .map(|n| n.saturating_add(PACK_TOKENS_PER_ROW).saturating_mul(rows)),
            // The answer is the packing protocol's JSON array, whatever a single row's
            // answer format (packable functions ask for none).
            response_format: None,
        };
        if runtime.dry_run {
            metrics.not_sent(request.prompt_chars());
            for row in pack {
                row.answer(runtime, Err(CallError::DryRun));
            }
            return;
        }
        let answer = match runtime
            .send(&request, metrics)
            .instrument(runtime.span(metrics))
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                for row in pack {
                    row.answer(runtime, Err(error.clone()));
                }
                return;
            }
        };
        let mut by_id = parse_packed_answer(&answer.content, pack.len());
        let mut again = Vec::new();
        for (row, id) in pack.into_iter().zip(1..) {
            match by_id.remove(&id) {
                Some(value) if valid(&value) => row.answer(
                    runtime,
                    Ok(ChatAnswer {
                        content: value,
                        usage: None,
                    }),
                ),
                _ => again.push(row),
            }
        }
        if again.is_empty() {
            return;
        }
        tracing::debug!(
            rows = again.len(),
            "a packed answer did not cover every row validly; asking those again"
        );
        metrics.repacked(again.len() as u64);
        let half = (size / 2).max(1);
        let repacks = group(again, half);
        join_all(
            repacks
                .into_iter()
                .map(|pack| ask(pack, half, valid, runtime, metrics)),
        )
        .await;
    }
    .boxed()
}

/// Asks a row with its own request.
async fn ask_alone(row: Unanswered, runtime: &CallRuntime, metrics: &Arc<FunctionMetrics>) {
    let result = if runtime.dry_run {
        metrics.not_sent(row.request.prompt_chars());
        Err(CallError::DryRun)
    } else {
        runtime
            .send(&row.request, metrics)
            .instrument(runtime.span(metrics))
            .await
    };
    row.answer(runtime, result);
}
