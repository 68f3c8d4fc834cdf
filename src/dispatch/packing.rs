//! Multi-row packing (`blossom.pack_rows`, `blossom.pack_tokens`): the rows of a batch
//! that share an instruction are asked several to a request, each pack filled until its
//! items' estimated tokens (characters / 4) reach `pack_tokens` or it holds `pack_rows`
//! rows. Filling by tokens keeps the instruction's share of the prompt small for short
//! texts and a pack of long texts from growing large. Each row keeps its own place in
//! the query's memo and the response cache, so deduplication, resuming and estimates
//! work per row as without packing. A packed answer that leaves a row out, repeats or
//! invents an id, or gives a value the function refuses, is never assigned to a row:
//! those rows are asked again in packs half the size, down to requests of their own.
//!
//! The pack size, in rows, adapts per call ([`PackControl`]): a pack that comes back
//! broken (fewer than half its rows validly answered) halves the size for the rest of
//! the call, and four sound full packs in a row (full: at the size, or closed by the
//! token budget) double it again, up to `pack_rows`. A size not
//! yet seen to work is tried by one pack at a time, so a model that never keeps the
//! protocol costs a few probes, not a broken request per pack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, SemaphorePermit};

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};

use super::CallError;
use super::claim::{AbortOnDrop, Ask, answer_all, answer_cached, await_answers, claim, spawn};
use super::scope::{AnswerResult, CallScope};
use crate::functions::pack::{ITEM_OVERHEAD_CHARS, packed_messages, parse_packed_answer};
use crate::provider::{ChatAnswer, ChatMessage, ChatRequest};

/// Extra answer tokens allowed per packed row for its id and JSON punctuation, when
/// `max_answer_tokens` limits the answer.
const PACK_TOKENS_PER_ROW: u32 = 16;

/// Whether an answer is a value the function accepts.
pub type Validate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Sound packs in a row, at the current size, after which the size doubles.
const GROW_AFTER: u32 = 4;

/// The pack size of one AI call, adapted to how well the model keeps the protocol.
#[derive(Debug)]
pub struct PackControl {
    state: Mutex<PackState>,
    /// Held by the one pack trying a size not yet seen to work.
    probe: Semaphore,
}

#[derive(Debug)]
struct PackState {
    /// `pack_rows` once known; 0 before the call's first pack.
    max: usize,
    size: usize,
    /// Whether a pack of `size` rows came back sound.
    proven: bool,
    /// The most rows of a pack that came back wholly answered: packs this small go
    /// without probing, whatever the size in force (a stream's packs are often short).
    proven_rows: usize,
    sound_in_a_row: u32,
}

impl Default for PackControl {
    fn default() -> Self {
        Self {
            state: Mutex::new(PackState {
                max: 0,
                size: 0,
                proven: false,
                proven_rows: 0,
                sound_in_a_row: 0,
            }),
            probe: Semaphore::new(1),
        }
    }
}

impl PackControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, PackState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pack size in force, starting at `pack_rows`.
    pub fn size(&self, pack_rows: usize) -> usize {
        let mut state = self.lock();
        if state.max != pack_rows {
            *state = PackState {
                max: pack_rows,
                size: pack_rows,
                proven: false,
                proven_rows: 0,
                sound_in_a_row: 0,
            };
        }
        state.size.max(1)
    }

    /// Waits until a pack of `rows` rows may be sent: at once when its size is proven
    /// (or a pack as large came back wholly answered), otherwise as the only pack trying
    /// it (the permit is held until its answer is judged).
    async fn admit(&self, rows: usize) -> Option<SemaphorePermit<'_>> {
        let known = |state: &PackState| state.proven || rows <= state.proven_rows;
        if known(&self.lock()) {
            return None;
        }
        let permit = self.probe.acquire().await.ok()?;
        if known(&self.lock()) {
            return None;
        }
        Some(permit)
    }

    /// Judges a pack of `rows` rows of which `valid` were validly answered; `full` when
    /// the token budget closed it, so that it counts as a pack of the size in force.
    fn judge(&self, rows: usize, valid: usize, full: bool) {
        let mut state = self.lock();
        if valid == rows {
            state.proven_rows = state.proven_rows.max(rows);
        } else {
            state.proven_rows = state.proven_rows.min(rows.saturating_sub(1));
        }
        if valid * 2 < rows {
            if rows <= state.size {
                state.size = (rows / 2).max(1);
                state.proven = false;
                state.sound_in_a_row = 0;
                tracing::debug!(
                    size = state.size,
                    "a packed answer came back broken; packing fewer rows for the rest of the call"
                );
            }
            return;
        }
        if rows != state.size && !(full && rows < state.size) {
            return;
        }
        state.proven = true;
        state.sound_in_a_row += 1;
        if state.sound_in_a_row >= GROW_AFTER && state.size < state.max {
            state.size = (state.size * 2).min(state.max);
            state.proven = false;
            state.sound_in_a_row = 0;
        }
    }
}

/// The answers of `rows` (`None` where a row needs none), packing the rows that can be:
/// those whose last message is a row text of at most `max_text_chars` characters.
pub async fn answers(
    rows: &[Option<&ChatRequest>],
    max_text_chars: usize,
    valid: Validate,
    control: &Arc<PackControl>,
    scope: &CallScope,
) -> Vec<Option<AnswerResult>> {
    let mut pending: Vec<Option<BoxFuture<'_, AnswerResult>>> = Vec::with_capacity(rows.len());
    let mut to_ask: Vec<Unanswered> = Vec::new();
    let cache = scope.cache().await;
    for row in rows {
        let Some(row) = row else {
            pending.push(None);
            continue;
        };
        let Some((instruction, text)) = split(row, max_text_chars) else {
            pending.push(Some(scope.answer(row).boxed()));
            continue;
        };
        let claim = claim(scope, scope.keys(row), cache.as_ref());
        pending.push(Some(claim.answer));
        if let Some(ask) = claim.ask {
            to_ask.push(Unanswered {
                request: (*row).clone(),
                instruction,
                text,
                ask,
            });
        }
    }
    let to_ask = answer_cached(scope, to_ask, |row| &row.ask, |row| row.ask).await;
    let pack_rows = scope.settings.pack_rows;
    let size = control.size(pack_rows);
    let _tasks: Vec<AbortOnDrop> = group(to_ask, size, scope.settings.pack_tokens)
        .into_iter()
        .map(|pack| {
            let task = ask(pack, Arc::clone(&valid), Arc::clone(control), scope.clone());
            spawn(task, scope)
        })
        .collect();
    await_answers(pending).await
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
    async fn answer(self, scope: &CallScope, result: Result<ChatAnswer, CallError>) {
        self.ask.answer(scope, result).await;
    }
}

/// Answers `rows` alike (a pack that failed, a dry run).
async fn answer_rows(
    rows: Vec<Unanswered>,
    scope: &CallScope,
    result: Result<ChatAnswer, CallError>,
) {
    let answers = rows
        .into_iter()
        .map(|row| (row.ask, result.clone()))
        .collect();
    answer_all(scope, answers).await;
}

/// A request's instruction and row text, when it has the shape packing needs: leading
/// messages, then the row's text (not too long) as the last, user, message.
fn split(request: &ChatRequest, max_text_chars: usize) -> Option<(Vec<ChatMessage>, String)> {
    let (last, instruction) = request.messages.split_last()?;
    let packable = last.role == "user"
        && !instruction.is_empty()
        && last.content.chars().count() <= max_text_chars;
    packable.then(|| (instruction.to_vec(), last.content.clone()))
}

/// A pack of rows sharing one instruction.
struct Pack {
    rows: Vec<Unanswered>,
    /// Whether the token budget closed it (the next row would have exceeded it).
    full: bool,
}

/// The characters an item adds to a packed request: its text, as the protocol writes
/// it, and its id.
fn item_chars(text: &str, id: usize) -> usize {
    let escapes = text
        .chars()
        .filter(|c| matches!(c, '"' | '\\') || c.is_control())
        .count();
    text.chars().count() + escapes + ITEM_OVERHEAD_CHARS + id.to_string().len()
}

/// The rows in packs sharing one instruction, in row order, filled as [`fill`] says.
fn group(rows: Vec<Unanswered>, size: usize, pack_tokens: usize) -> Vec<Pack> {
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
    let mut packs: Vec<Pack> = Vec::new();
    for rows in by_instruction {
        let texts: Vec<&str> = rows.iter().map(|row| row.text.as_str()).collect();
        let bounds = fill(&texts, size, pack_tokens);
        let mut rows = rows.into_iter();
        for (len, full) in bounds {
            packs.push(Pack {
                rows: rows.by_ref().take(len).collect(),
                full,
            });
        }
    }
    packs
}

/// How `texts` fill packs, in order: each pack's number of rows and whether the token
/// budget closed it. A pack holds at most `size` rows and, unless it holds one row, at
/// most `pack_tokens` estimated tokens (characters / 4) of items.
fn fill(texts: &[&str], size: usize, pack_tokens: usize) -> Vec<(usize, bool)> {
    let budget = pack_tokens.saturating_mul(4);
    let mut packs = Vec::new();
    let (mut len, mut chars) = (0, 0);
    for text in texts {
        let row_chars = item_chars(text, len + 1);
        let over = chars + row_chars > budget;
        if len > 0 && (len >= size.max(1) || over) {
            packs.push((len, over));
            (len, chars) = (0, item_chars(text, 1));
        } else {
            chars += row_chars;
        }
        len += 1;
    }
    if len > 0 {
        packs.push((len, false));
    }
    packs
}

/// Asks one pack and answers its rows; rows the answer does not validly cover are asked
/// again in packs of half the size. A pack larger than the call's size in force when its
/// turn comes is split first.
fn ask(
    pack: Pack,
    valid: Validate,
    control: Arc<PackControl>,
    scope: CallScope,
) -> BoxFuture<'static, ()> {
    async move {
        let Pack { rows: pack, full } = pack;
        let probe = if pack.len() > 1 && !scope.dry_run {
            control.admit(pack.len()).await
        } else {
            None
        };
        let size = control.size(scope.settings.pack_rows);
        if pack.len() > size {
            drop(probe);
            let packs = group(pack, size, scope.settings.pack_tokens);
            ask_all(packs, &valid, &control, &scope).await;
            return;
        }
        if pack.len() == 1 {
            for row in pack {
                ask_alone(row, &scope).await;
            }
            return;
        }
        let texts: Vec<&str> = pack.iter().map(|row| row.text.as_str()).collect();
        let first = &pack[0].request;
        let Some(messages) = packed_messages(&pack[0].instruction, &texts) else {
            for row in pack {
                ask_alone(row, &scope).await;
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
            // answer format.
            response_format: None,
        };
        if scope.dry_run {
            scope.not_sent(request.prompt_chars(), request.max_tokens, false);
            answer_rows(pack, &scope, Err(CallError::DryRun)).await;
            return;
        }
        let sent = scope.send(&request).await;
        let size = pack.len();
        let again = match sent {
            Ok(answer) => {
                let parsed = parse_packed_answer(&answer.content, pack.len());
                let mut by_id = parsed.answers;
                // An answer that repeats its item's text is no answer (a model
                // echoing the input back), whatever the function would accept.
                let validity: Vec<bool> = pack
                    .iter()
                    .zip(1..)
                    .map(|(row, id)| {
                        by_id
                            .get(&id)
                            .is_some_and(|value| value.trim() != row.text.trim() && valid(value))
                    })
                    .collect();
                control.judge(pack.len(), validity.iter().filter(|v| **v).count(), full);
                scope
                    .events
                    .pack_size(control.size(scope.settings.pack_rows) as u64);
                drop(probe);
                let mut again = Vec::new();
                let mut answered = Vec::new();
                for ((row, id), valid) in pack.into_iter().zip(1..).zip(validity) {
                    match by_id.remove(&id) {
                        Some(value) if parsed.intact && valid => answered.push((
                            row.ask,
                            Ok(ChatAnswer {
                                content: value,
                                usage: None,
                            }),
                        )),
                        _ => again.push(row),
                    }
                }
                // The pack's answers are kept together, before its rows go on.
                answer_all(&scope, answered).await;
                again
            }
            // A request refused for its content (too long, filtered) may be refused
            // because of one row: the others should not fail with it.
            Err(CallError::Failed { error, .. }) if error.rejects_request() => {
                control.judge(pack.len(), 0, full);
                // The halves asked next may need the probe this pack holds.
                drop(probe);
                pack
            }
            Err(error) => {
                answer_rows(pack, &scope, Err(error)).await;
                return;
            }
        };
        if again.is_empty() {
            return;
        }
        tracing::debug!(
            rows = again.len(),
            "a packed answer did not cover every row validly; asking those again"
        );
        scope.events.repacked(again.len() as u64);
        let half = (size / 2)
            .max(1)
            .min(again.len().div_ceil(2))
            .min(control.size(scope.settings.pack_rows));
        let packs = group(again, half, scope.settings.pack_tokens);
        ask_all(packs, &valid, &control, &scope).await;
    }
    .boxed()
}

/// Asks each of `packs`, together.
async fn ask_all(
    packs: Vec<Pack>,
    valid: &Validate,
    control: &Arc<PackControl>,
    scope: &CallScope,
) {
    join_all(
        packs
            .into_iter()
            .map(|pack| ask(pack, Arc::clone(valid), Arc::clone(control), scope.clone())),
    )
    .await;
}

/// Asks a row with its own request.
async fn ask_alone(row: Unanswered, scope: &CallScope) {
    let result = if scope.dry_run {
        scope.not_sent(row.request.prompt_chars(), row.request.max_tokens, false);
        Err(CallError::DryRun)
    } else {
        scope.send(&row.request).await
    };
    row.answer(scope, result).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_fill_to_the_token_budget_or_the_row_cap() {
        // 36 characters of text, 41 with the item's id and delimiters: 9 items per
        // 100 tokens (400 characters) while ids have one digit.
        let text = "a".repeat(36);
        assert_eq!(item_chars(&text, 7), 41);
        let texts = vec![text.as_str(); 25];
        assert_eq!(fill(&texts, 64, 100), [(9, true), (9, true), (7, false)]);
        // The row cap comes first: not closed by the budget.
        assert_eq!(fill(&texts, 5, 100), [(5, false); 5]);
        // A text over the budget on its own still goes, alone.
        let long = "b".repeat(1_000);
        assert_eq!(
            fill(&[long.as_str(), "x", "y"], 64, 100),
            [(1, true), (2, false)]
        );
        // Quotes and line breaks are escaped, so they count twice.
        assert_eq!(item_chars("\"a\"\n", 1), 4 + 3 + ITEM_OVERHEAD_CHARS + 1);
        assert!(fill(&[], 8, 100).is_empty());
    }

    #[test]
    fn a_pack_the_budget_closed_proves_the_size() {
        let control = PackControl::default();
        assert_eq!(control.size(32), 32);
        control.judge(20, 20, false);
        assert!(!control.lock().proven, "a short last pack proves nothing");
        control.judge(20, 20, true);
        assert!(control.lock().proven);
        control.judge(20, 3, true);
        assert_eq!(control.size(32), 10, "a broken pack halves its own size");
    }

    #[tokio::test]
    async fn short_packs_as_large_as_one_answered_whole_need_no_probe() {
        let control = PackControl::default();
        assert_eq!(control.size(32), 32);
        // The first short pack probes; once it came back whole, packs as short do not.
        let probe = control.admit(2).await;
        assert!(probe.is_some());
        control.judge(2, 2, false);
        drop(probe);
        assert!(control.admit(2).await.is_none());
        assert!(control.admit(1).await.is_none());
        let larger = control.admit(3).await;
        assert!(larger.is_some(), "a larger pack still probes");
        // A broken pack of 2 makes 2 unknown again.
        control.judge(2, 0, false);
        drop(larger);
        assert!(control.admit(2).await.is_some());
    }
}
