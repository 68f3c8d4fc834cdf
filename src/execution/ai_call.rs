//! One AI call in a plan ([`AiCall`]) and its evaluation over a record batch: prompts
//! per row (only for rows whose CASE branch or AND/OR operand needs the value), one
//! deduplicated request per distinct prompt, answers parsed into an array.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result, ScalarValue, internal_datafusion_err};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use futures::future::join_all;

use super::reduce::{ReduceError, list_items, reduce, text_lists};
use super::services::{AiServices, QueryState};
use crate::config::{OnError, ProviderSettings};
use crate::dispatch::{
    AnswerResult, BudgetExceeded, CallError, CallScope, PackControl, StopReason, Validate,
    embedding, packing,
};
use crate::error_class::ErrorClass;
use crate::functions::{AiFunction, AiUdf, BoundArgs, Stage};
use crate::observe::error_log::now_unix_ms;
use crate::observe::{AiMetrics, CallEvents, ErrorLog, RowError};
use crate::provider::{ChatMessage, ChatRequest, ProviderError, truncate_chars};

/// How much of a row's input an error message shows.
const INPUT_EXCERPT_CHARS: usize = 60;

/// What a condition must be for a guarded call to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    /// TRUE (a CASE branch taken).
    True,
    /// FALSE or NULL (an earlier CASE branch not taken; the left side of OR).
    NotTrue,
    /// TRUE or NULL (the left side of AND).
    NotFalse,
}

/// A condition under which a call's value is used: rows where it does not hold get
/// NULL without a request, and the expression reading the column never looks at them.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub expr: Arc<dyn PhysicalExpr>,
    pub truth: Truth,
}

impl Guard {
    fn holds(&self, value: Option<bool>) -> bool {
        match self.truth {
            Truth::True => value == Some(true),
            Truth::NotTrue => value != Some(true),
            Truth::NotFalse => value != Some(false),
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.truth {
            Truth::True => write!(f, "{}", self.expr),
            Truth::NotTrue => write!(f, "({}) IS NOT TRUE", self.expr),
            Truth::NotFalse => write!(f, "({}) IS NOT FALSE", self.expr),
        }
    }
}

/// An AI function call found in a plan, evaluated by [`crate::execution::AiExec`] into a
/// new column.
#[derive(Debug, Clone)]
pub(crate) struct AiCall {
    /// The output column's name.
    pub name: String,
    /// The call as it appeared in the plan (used to rewrite references to it).
    pub expr: Arc<dyn PhysicalExpr>,
    /// Conditions that must all hold for a row to be asked about.
    pub guards: Vec<Guard>,
    function: Arc<dyn AiFunction>,
    /// The arguments evaluated per row (the function's text parameters).
    args: Vec<Arc<dyn PhysicalExpr>>,
    /// The call's literal arguments and options, checked and parsed once.
    bound: Arc<BoundArgs>,
    pub field: FieldRef,
}

impl AiCall {
    /// The AI function of `expr`, when `expr` is a call to one.
    pub(crate) fn function_of(expr: &Arc<dyn PhysicalExpr>) -> Option<&Arc<dyn AiFunction>> {
        let call = expr.downcast_ref::<ScalarFunctionExpr>()?;
        call.fun()
            .inner()
            .downcast_ref::<AiUdf>()
            .map(AiUdf::function)
    }

    /// The call `expr` as an [`AiCall`] producing column `name`, or `None` if it is not
    /// a call to an AI function.
    pub(crate) fn try_new(
        name: String,
        expr: &Arc<dyn PhysicalExpr>,
        guards: Vec<Guard>,
        input_schema: &Schema,
    ) -> Result<Option<Self>> {
        let Some(function) = Self::function_of(expr) else {
            return Ok(None);
        };
        let call = expr
            .downcast_ref::<ScalarFunctionExpr>()
            .ok_or_else(|| internal_datafusion_err!("AI call is not a scalar function"))?;
        let all_args = call.args();
        let types = all_args
            .iter()
            .map(|arg| arg.data_type(input_schema))
            .collect::<Result<Vec<_>>>()?;
        let literals: Vec<Option<&ScalarValue>> = all_args
            .iter()
            .map(|arg| arg.downcast_ref::<Literal>().map(Literal::value))
            .collect();
        let bound = function
            .spec()
            .bind(function.name(), &types, &literals, Stage::Physical)?;
        let args = bound
            .row_args
            .iter()
            .filter_map(|&i| all_args.get(i).cloned())
            .collect();
        let field = expr
            .return_field(input_schema)?
            .as_ref()
            .clone()
            .with_name(&name)
            .with_nullable(true);
        Ok(Some(Self {
            name,
            expr: Arc::clone(expr),
            guards,
            function: Arc::clone(function),
            args,
            bound: Arc::new(bound),
            field: Arc::new(field),
        }))
    }

    /// The AI function's SQL name.
    pub(crate) fn function_name(&self) -> &'static str {
        self.function.name()
    }

    /// Whether its rows are asked several to a request.
    pub(crate) fn packable(&self) -> bool {
        self.function.packable()
    }

    /// Which rows the guards let through.
    fn selected_rows(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let mut selected = vec![true; batch.num_rows()];
        for guard in &self.guards {
            let values = guard.expr.evaluate(batch)?.into_array(batch.num_rows())?;
            let values = cast(&values, &DataType::Boolean)?;
            let values = values
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| internal_datafusion_err!("guard is not boolean"))?;
            for (row, keep) in selected.iter_mut().enumerate() {
                *keep = *keep && guard.holds(values.is_valid(row).then(|| values.value(row)));
            }
        }
        Ok(selected)
    }

    /// One request per row: `None` where a guard does not hold, an argument is NULL or
    /// the first one is blank (for a list argument: it holds no text); and how many rows
    /// the guards left out.
    fn requests(
        &self,
        batch: &RecordBatch,
        settings: &ProviderSettings,
    ) -> Result<(Vec<Option<Row>>, usize)> {
        let selected = self.selected_rows(batch)?;
        let skipped = selected.iter().filter(|keep| !**keep).count();
        // The list argument (of a reducing function) is read apart from the texts.
        let list_arg = self.bound.list_arg;
        let lists = match list_arg.and_then(|i| self.args.get(i)) {
            Some(arg) => Some(text_lists(
                &arg.evaluate(batch)?.into_array(batch.num_rows())?,
            )?),
            None => None,
        };
        let columns = self
            .args
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != list_arg)
            .map(|(_, arg)| {
                let array = arg.evaluate(batch)?.into_array(batch.num_rows())?;
                let text = cast(&array, &DataType::Utf8)?;
                text.as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| internal_datafusion_err!("cast to Utf8 gave no StringArray"))
            })
            .collect::<Result<Vec<StringArray>>>()?;
        let rows = (0..batch.num_rows())
            .map(|row| {
                if !selected[row] {
                    return None;
                }
                if columns.iter().any(|c| c.is_null(row)) {
                    return None;
                }
                let args: Vec<&str> = columns.iter().map(|c| c.value(row)).collect();
                if let Some(lists) = &lists {
                    return self.reduction_row(lists, row, &args, settings).transpose();
                }
                if args.first().is_some_and(|a| a.trim().is_empty()) {
                    return None;
                }
                let constants = &self.bound.constants;
                let request = self.request(settings, self.function.messages(&args, constants));
                let firmer = self
                    .function
                    .firmer_messages(&args, constants)
                    .map(|messages| self.request(settings, messages));
                Some(Ok(Row {
                    input: truncate_chars(
                        args.first().copied().unwrap_or_default(),
                        INPUT_EXCERPT_CHARS,
                    ),
                    request,
                    firmer,
                    reduction: None,
                }))
            })
            .map(Option::transpose)
            .collect::<Result<Vec<Option<Row>>>>()?;
        Ok((rows, skipped))
    }

    /// The row of a reducing function: `None` when its list holds no text; otherwise
    /// the request over the whole list, and the list for [`reduce`] to chunk when that
    /// request would be too long.
    fn reduction_row(
        &self,
        lists: &datafusion::arrow::array::ListArray,
        row: usize,
        args: &[&str],
        settings: &ProviderSettings,
    ) -> Result<Option<Row>> {
        let Some(plan) = self.function.reduction() else {
            return Ok(None);
        };
        let items = match list_items(lists, row)? {
            Some(items) if !items.is_empty() => items,
            _ => return Ok(None),
        };
        let texts: Vec<&str> = items.iter().map(String::as_str).collect();
        let messages = plan.chunk_messages(&texts, args, &self.bound.constants);
        let first = truncate_chars(
            items.first().map(String::as_str).unwrap_or_default(),
            INPUT_EXCERPT_CHARS,
        );
        let input = match items.len() {
            1 => first,
            n => format!("{first} (+{} more)", n - 1),
        };
        Ok(Some(Row {
            input,
            request: self.request(settings, messages),
            firmer: None,
            reduction: Some(Box::new(ReductionInput {
                items,
                args: args.iter().map(|a| a.to_string()).collect(),
            })),
        }))
    }

    /// A request with the session settings, overridden by the call's options.
    pub(crate) fn request(
        &self,
        settings: &ProviderSettings,
        messages: Vec<ChatMessage>,
    ) -> ChatRequest {
        let options = &self.bound.options;
        ChatRequest {
            model: options.model.clone().unwrap_or_else(|| {
                match self.function.embeds(&self.bound.constants) {
                    Some(_) => settings.embedding_model.clone(),
                    None => settings.model.clone(),
                }
            }),
            messages,
            temperature: options.temperature.or(settings.temperature),
            max_tokens: options.max_answer_tokens.or(settings.max_answer_tokens),
            response_format: self.function.response_format(&self.bound.constants),
        }
    }

    /// A row's value, or why it has none: the answer parsed, or, when the function
    /// refuses it and has firmer messages, the answer to those parsed.
    async fn outcome(&self, row: &Row, first: AnswerResult, runtime: &CallRuntime) -> Outcome {
        let constants = &self.bound.constants;
        let answer = match first {
            Ok(answer) => answer,
            Err(error) => return Outcome::of(&error),
        };
        let why = match self.function.parse_lenient(&answer.content, constants) {
            Ok((value, problems)) => return Outcome::of_value(value, problems),
            Err(why) => why,
        };
        let Some(firmer) = &row.firmer else {
            return Outcome::Failed(Cause::invalid(why));
        };
        let answer = match runtime.scope.answer(firmer).await {
            Ok(answer) => answer,
            Err(error) => return Outcome::of(&error),
        };
        match self.function.parse_lenient(&answer.content, constants) {
            Ok((value, problems)) => Outcome::of_value(value, problems),
            Err(again) => Outcome::Failed(Cause::invalid(format!(
                "{again} (asked twice, the second time more firmly)"
            ))),
        }
    }

    /// A reducing row's value: its list reduced by [`reduce`] within
    /// `blossom.max_prompt_chars`, every request asked through `runtime`, the final
    /// answer parsed.
    async fn reduction_outcome(&self, input: &ReductionInput, runtime: &CallRuntime) -> Outcome {
        let Some(plan) = self.function.reduction() else {
            return Outcome::Failed(Cause::invalid(format!(
                "{}() reduces no list",
                self.function.name()
            )));
        };
        let constants = &self.bound.constants;
        let items: Vec<&str> = input.items.iter().map(String::as_str).collect();
        let args: Vec<&str> = input.args.iter().map(String::as_str).collect();
        let requests = std::sync::atomic::AtomicUsize::new(0);
        let requests = &requests;
        let ask = |messages: Vec<ChatMessage>| async move {
            requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let request = self.request(&runtime.scope.settings, messages);
            match runtime.scope.answer(&request).await {
                Ok(answer) => Ok(answer.content.clone()),
                Err(error) => Err(Outcome::of(&error)),
            }
        };
        let max_chars = runtime.scope.settings.max_prompt_chars;
        let result = reduce(plan, &items, &args, constants, max_chars, ask).await;
        // A dry run cannot know the combining requests over partial answers it does
        // not have: the estimate of a list in several chunks is a lower bound.
        if runtime.scope.dry_run
            && matches!(result, Err(ReduceError::Ask(Outcome::NotSent)))
            && requests.load(std::sync::atomic::Ordering::Relaxed) > 1
        {
            runtime.events.estimate_incomplete();
        }
        match result {
            Ok(answer) => match self.function.parse(&answer, constants) {
                Ok(value) => Outcome::Value(value),
                Err(why) => Outcome::Failed(Cause::invalid(why)),
            },
            Err(ReduceError::Ask(outcome)) => outcome,
            Err(ReduceError::TooLong(why)) => Outcome::Failed(Cause {
                class: ErrorClass::PromptTooLong,
                status: None,
                attempts: None,
                message: why,
            }),
        }
    }

    /// The column of this call's results for `batch`.
    pub(crate) async fn evaluate(
        &self,
        batch: &RecordBatch,
        runtime: &CallRuntime,
    ) -> Result<ArrayRef> {
        let (rows, skipped) = self.requests(batch, &runtime.scope.settings)?;
        let asked = rows.iter().flatten().count();
        runtime.events.rows_started(asked as u64, skipped as u64);
        if self.function.reduction().is_some() {
            // A reduction asks over chunks of each row's list, not one request per row.
            let outcomes = join_all(rows.iter().map(|row| async move {
                match row.as_ref().and_then(|row| row.reduction.as_deref()) {
                    Some(input) => {
                        let outcome = self.reduction_outcome(input, runtime).await;
                        self.stop_on_failure(row.as_ref(), &outcome, runtime);
                        Some(outcome)
                    }
                    None => None,
                }
            }))
            .await;
            return self.column(&rows, outcomes, asked, runtime);
        }
        let requests: Vec<Option<&ChatRequest>> = rows
            .iter()
            .map(|row| row.as_ref().map(|r| &r.request))
            .collect();
        let answers = if let Some(dimensions) = self.function.embeds(&self.bound.constants) {
            embedding::answers(&requests, dimensions, &runtime.scope).await
        } else if runtime.scope.settings.pack_rows > 1 && self.function.packable() {
            let function = Arc::clone(&self.function);
            let constants = self.bound.constants.clone();
            let valid: Validate =
                Arc::new(move |answer: &str| function.parse(answer, &constants).is_ok());
            let max_text_chars = self.function.max_packed_text_chars();
            packing::answers(
                &requests,
                max_text_chars,
                valid,
                &runtime.pack_control,
                &runtime.scope,
            )
            .await
        } else {
            // One request per row: each row's outcome is known as soon as its answer is,
            // so the first row failing for good stops the query at once.
            let outcomes = join_all(rows.iter().map(|row| async move {
                let row = row.as_ref()?;
                let answer = runtime.scope.answer(&row.request).await;
                let outcome = self.outcome(row, answer, runtime).await;
                self.stop_on_failure(Some(row), &outcome, runtime);
                Some(outcome)
            }))
            .await;
            return self.column(&rows, outcomes, asked, runtime);
        };
        let outcomes = join_all(rows.iter().zip(answers).map(|(row, answer)| async move {
            match (row, answer) {
                (Some(row), Some(answer)) => {
                    let outcome = self.outcome(row, answer, runtime).await;
                    self.stop_on_failure(Some(row), &outcome, runtime);
                    Some(outcome)
                }
                _ => None,
            }
        }))
        .await;
        self.column(&rows, outcomes, asked, runtime)
    }

    /// Under `blossom.on_error = 'fail'`, a row that failed for good stops the query at
    /// once: no other request of it is sent, and those in flight are dropped.
    fn stop_on_failure(&self, row: Option<&Row>, outcome: &Outcome, runtime: &CallRuntime) {
        let scope = &runtime.scope;
        if scope.dry_run || scope.settings.on_error != OnError::Fail {
            return;
        }
        if let (Some(row), Outcome::Failed(cause) | Outcome::Partial(_, cause)) = (row, outcome) {
            let failure = RowFailure {
                function: self.function.name(),
                input: &row.input,
                why: &cause.message,
            };
            scope
                .query
                .stop
                .stop(StopReason::RowFailed(failure.to_string()));
        }
    }

    /// The column of the rows' outcomes: values, NULL where a row needed no answer, and
    /// failures recorded (failing the query under `blossom.on_error = 'fail'`).
    fn column(
        &self,
        rows: &[Option<Row>],
        outcomes: Vec<Option<Outcome>>,
        asked: usize,
        runtime: &CallRuntime,
    ) -> Result<ArrayRef> {
        let scope = &runtime.scope;
        let null = ScalarValue::try_from(self.field.data_type())?;
        let mut values = Vec::with_capacity(rows.len());
        let mut failed = 0;
        let mut stopped = None;
        let finish = |failed: u64| runtime.events.rows_finished(asked as u64, failed);
        for (row, outcome) in rows.iter().zip(outcomes) {
            let (Some(row), Some(outcome)) = (row, outcome) else {
                values.push(null.clone());
                continue;
            };
            // A failed row's value: NULL, or what a partly invalid answer still gave. An
            // estimate records no failure (a cached answer may be one the function
            // refuses) and never fails.
            let (outcome, kept) = match outcome {
                Outcome::Value(value) => (Ok(value), None),
                Outcome::NotSent => (Ok(null.clone()), None),
                Outcome::Failed(_) | Outcome::Partial(..) if scope.dry_run => {
                    (Ok(null.clone()), None)
                }
                Outcome::Failed(cause) => (Err(cause), None),
                Outcome::Partial(value, cause) => (Err(cause), Some(value)),
                Outcome::OverBudget(exceeded) => {
                    finish(failed);
                    return Err(DataFusionError::External(Box::new(exceeded)));
                }
                Outcome::Stopped(reason) => {
                    // The row that stopped the query, if it is in this batch, is the
                    // one to report.
                    stopped.get_or_insert(reason);
                    values.push(null.clone());
                    continue;
                }
            };
            match outcome {
                Ok(value) => values.push(value),
                Err(cause) => {
                    failed += 1;
                    let failure = RowFailure {
                        function: self.function.name(),
                        input: &row.input,
                        why: &cause.message,
                    };
                    runtime.errors.record(RowError {
                        query_id: scope.query_id,
                        function: self.function.name().to_string(),
                        input: row.input.clone(),
                        error_class: cause.class.as_str().to_string(),
                        status: cause.status,
                        message: cause.message.clone(),
                        attempts: cause.attempts,
                        at_unix_ms: now_unix_ms(),
                    });
                    if scope.settings.on_error == OnError::Fail {
                        finish(failed);
                        return Err(DataFusionError::Execution(failure.to_string()));
                    }
                    tracing::warn!("{failure}; the row gets NULL (blossom.on_error = 'null')");
                    values.push(kept.unwrap_or_else(|| null.clone()));
                }
            }
        }
        finish(failed);
        if let Some(reason) = stopped {
            return Err(DataFusionError::Execution(reason.to_string()));
        }
        if values.is_empty() {
            return Ok(new_empty_array(self.field.data_type()));
        }
        ScalarValue::iter_to_array(values)
    }
}

impl fmt::Display for AiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} AS {}", self.expr, self.name)?;
        for (i, guard) in self.guards.iter().enumerate() {
            f.write_str(if i == 0 { " WHEN " } else { " AND " })?;
            write!(f, "{guard}")?;
        }
        Ok(())
    }
}

/// One row's request, with the excerpt of its input that errors show and the firmer
/// request sent when the function refuses the first answer.
pub(super) struct Row {
    input: String,
    pub request: ChatRequest,
    firmer: Option<ChatRequest>,
    /// For a reducing function: the row's list, reduced in as many requests as
    /// `blossom.max_prompt_chars` needs; `request` is then the one over the whole list.
    reduction: Option<Box<ReductionInput>>,
}

/// A reducing row's texts (NULL and blank ones left out) and its other arguments.
struct ReductionInput {
    items: Vec<String>,
    args: Vec<String>,
}

/// Why a row failed, as the error log records it.
struct Cause {
    class: ErrorClass,
    status: Option<u16>,
    attempts: Option<u32>,
    message: String,
}

impl Cause {
    /// An answer the function refused.
    fn invalid(message: String) -> Self {
        Self {
            class: ErrorClass::InvalidAnswer,
            status: None,
            attempts: None,
            message,
        }
    }

    /// Fields of an answer the function could not use (the rest of the value is kept).
    fn invalid_fields(problems: &[String]) -> Self {
        Self {
            class: ErrorClass::InvalidField,
            status: None,
            attempts: None,
            message: problems.join("; "),
        }
    }

    /// A request the provider failed for good.
    fn of(error: &CallError, attempts: u32, provider_error: &ProviderError) -> Self {
        Self {
            class: provider_error.class(),
            status: provider_error.status(),
            attempts: Some(attempts),
            message: error.to_string(),
        }
    }
}

/// What became of one row's call.
enum Outcome {
    /// Its value.
    Value(ScalarValue),
    /// Not asked: a dry run (`blossom_estimate`) without a cached answer.
    NotSent,
    /// Failed for good; recorded, and NULL or the query's error per `blossom.on_error`.
    Failed(Cause),
    /// A value with fields the function could not use: recorded and failed like
    /// `Failed`, but the row keeps the value under `blossom.on_error = 'null'`.
    Partial(ScalarValue, Cause),
    /// The query's budget stops the query.
    OverBudget(BudgetExceeded),
    /// The query stopped before this row was answered.
    Stopped(Arc<StopReason>),
}

impl Outcome {
    /// A parsed value, partial when it came with problems.
    fn of_value(value: ScalarValue, problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Self::Value(value)
        } else {
            Self::Partial(value, Cause::invalid_fields(&problems))
        }
    }

    fn of(error: &CallError) -> Self {
        match error {
            CallError::Failed {
                attempts,
                error: provider_error,
            } => Self::Failed(Cause::of(error, *attempts, provider_error)),
            CallError::OverBudget(exceeded) => Self::OverBudget(exceeded.clone()),
            CallError::DryRun => Self::NotSent,
            CallError::Stopped(reason) => Self::Stopped(Arc::clone(reason)),
        }
    }
}

/// A row whose call failed for good.
struct RowFailure<'a> {
    function: &'a str,
    input: &'a str,
    why: &'a str,
}

impl fmt::Display for RowFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}() failed for the row with input {:?}: {}",
            self.function, self.input, self.why
        )
    }
}

/// What one AI call of one partition evaluates with: the request pipeline's entry, the
/// observer its row events go to (the same one the pipeline reports to), the session's
/// error log, and the call's pack size for this query.
#[derive(Clone)]
pub(crate) struct CallRuntime {
    pub scope: CallScope,
    pub events: Arc<CallEvents>,
    pub errors: Arc<ErrorLog>,
    pub pack_control: Arc<PackControl>,
}

impl CallRuntime {
    /// The runtime of a call to `function` (its pack size kept under `call`, the call as
    /// the plan shows it) in the query `query`, reporting to the operator's metrics.
    pub(crate) fn new(
        function: &'static str,
        call: &str,
        services: &AiServices,
        query: &QueryState,
        settings: &Arc<ProviderSettings>,
        operator: &AiMetrics,
    ) -> Self {
        let events = Arc::new(CallEvents::new(
            operator.clone(),
            query.metrics.function(function),
            Arc::clone(services.stats()),
            query.dry_run,
        ));
        Self {
            scope: CallScope {
                dispatcher: Arc::clone(services.dispatcher()),
                memo: Arc::clone(&query.memo),
                settings: Arc::clone(settings),
                query: query.control.clone(),
                query_id: query.metrics.query_id(),
                function,
                events: Arc::clone(&events) as _,
                dry_run: query.dry_run,
            },
            events,
            errors: Arc::clone(services.errors()),
            pack_control: query.pack_control(call),
        }
    }
}
