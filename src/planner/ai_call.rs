//! One AI call in a plan ([`AiCall`]) and its evaluation over a record batch: prompts
//! per row, one deduplicated request per distinct prompt, answers parsed into an array.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result, ScalarValue, internal_datafusion_err};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use futures::future::join_all;

use crate::config::{OnError, ProviderSettings};
use crate::dispatch::{CallError, Dispatcher, QueryMemo};
use crate::functions::{AiFunction, AiUdf};
use crate::provider::{ChatAnswer, ChatRequest, truncate_chars};

/// Answers of one query, deduplicated by request.
pub(crate) type AnswerMemo = QueryMemo<ChatAnswer, CallError>;

/// How much of a row's input an error message shows.
const INPUT_EXCERPT_CHARS: usize = 60;

/// An AI function call found in a plan, evaluated by [`crate::planner::AiExec`] into a
/// new column.
#[derive(Debug, Clone)]
pub(crate) struct AiCall {
    /// The output column's name.
    pub name: String,
    /// The call as it appeared in the plan (used to rewrite references to it).
    pub expr: Arc<dyn PhysicalExpr>,
    function: Arc<dyn AiFunction>,
    args: Vec<Arc<dyn PhysicalExpr>>,
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
        input_schema: &Schema,
    ) -> Result<Option<Self>> {
        let Some(function) = Self::function_of(expr) else {
            return Ok(None);
        };
        let call = expr
            .downcast_ref::<ScalarFunctionExpr>()
            .ok_or_else(|| internal_datafusion_err!("AI call is not a scalar function"))?;
        let field = expr
            .return_field(input_schema)?
            .as_ref()
            .clone()
            .with_name(&name)
            .with_nullable(true);
        Ok(Some(Self {
            name,
            expr: Arc::clone(expr),
            function: Arc::clone(function),
            args: call.args().to_vec(),
            field: Arc::new(field),
        }))
    }

    /// One request per row: `None` where an argument is NULL or the first one is blank.
    fn requests(
        &self,
        batch: &RecordBatch,
        settings: &ProviderSettings,
    ) -> Result<Vec<Option<Row>>> {
        let columns = self
            .args
            .iter()
            .map(|arg| {
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
                if columns.iter().any(|c| c.is_null(row)) {
                    return None;
                }
                let args: Vec<&str> = columns.iter().map(|c| c.value(row)).collect();
                if args.first().is_some_and(|a| a.trim().is_empty()) {
                    return None;
                }
                let request = ChatRequest {
                    model: settings.model.clone(),
                    messages: self.function.messages(&args),
                    temperature: settings.temperature,
                    max_tokens: settings.max_tokens,
                };
                Some(Row {
                    input: truncate_chars(
                        args.first().copied().unwrap_or_default(),
                        INPUT_EXCERPT_CHARS,
                    ),
                    request,
                })
            })
            .collect();
        Ok(rows)
    }

    /// The column of this call's results for `batch`.
    pub(crate) async fn evaluate(
        &self,
        batch: &RecordBatch,
        runtime: &CallRuntime,
    ) -> Result<ArrayRef> {
        let rows = self.requests(batch, &runtime.settings)?;
        let answers = join_all(rows.iter().map(|row| async move {
            match row {
                Some(row) => Some(runtime.answer(&row.request).await),
                None => None,
            }
        }))
        .await;
        let null = ScalarValue::try_from(self.field.data_type())?;
        let values = rows
            .iter()
            .zip(answers)
            .map(|(row, answer)| {
                let (Some(row), Some(answer)) = (row, answer) else {
                    return Ok(null.clone());
                };
                let outcome = match answer {
                    Ok(answer) => self.function.parse(&answer.content),
                    Err(error) => Err(error.to_string()),
                };
                match outcome {
                    Ok(value) => Ok(value),
                    Err(why) => {
                        let failure = RowFailure {
                            function: self.function.name(),
                            input: &row.input,
                            why: &why,
                        };
                        match runtime.settings.on_error {
                            OnError::Fail => Err(DataFusionError::Execution(failure.to_string())),
                            OnError::Null => {
                                tracing::warn!(
                                    "{failure}; the row gets NULL (blossom.on_error = 'null')"
                                );
                                Ok(null.clone())
                            }
                        }
                    }
                }
            })
            .collect::<Result<Vec<ScalarValue>>>()?;
        if values.is_empty() {
            return Ok(new_empty_array(self.field.data_type()));
        }
        ScalarValue::iter_to_array(values)
    }
}

impl fmt::Display for AiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} AS {}", self.expr, self.name)
    }
}

/// One row's request, with the excerpt of its input that errors show.
struct Row {
    input: String,
    request: ChatRequest,
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

/// What the calls of one query execution share: the dispatcher, the query's answers and
/// the settings in force when it started.
#[derive(Debug, Clone)]
pub(crate) struct CallRuntime {
    pub dispatcher: Arc<Dispatcher>,
    pub memo: Arc<AnswerMemo>,
    pub settings: Arc<ProviderSettings>,
}

impl CallRuntime {
    /// The answer to `request`: sent once per query, whoever else asks the same.
    async fn answer(
        &self,
        request: &ChatRequest,
    ) -> std::result::Result<Arc<ChatAnswer>, Arc<CallError>> {
        let key = match serde_json::to_string(request) {
            Ok(body) => format!("{}\n{body}", self.settings.chat_url),
            Err(e) => {
                return Err(Arc::new(CallError {
                    attempts: 0,
                    error: crate::provider::ProviderError::Malformed {
                        detail: format!("request could not be encoded: {e}"),
                    },
                }));
            }
        };
        let dispatcher = Arc::clone(&self.dispatcher);
        let settings = Arc::clone(&self.settings);
        let request = request.clone();
        self.memo
            .get_or_call(
                key,
                async move { dispatcher.call(&settings, &request).await },
            )
            .await
    }
}
