//! The AI functions, one per file: each holds its prompt, its return type and its answer
//! parser. They know nothing of HTTP; [`crate::planner`] runs them through the
//! [`crate::dispatch::Dispatcher`].

mod args;
mod enhance;
mod generate;
mod insights;
mod sentiment;
mod udf;

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{DocSection, Documentation, ScalarUDF};

pub use enhance::Enhance;
pub use generate::Generate;
pub use insights::Insights;
pub use sentiment::Sentiment;
pub use udf::AiUdf;

use crate::provider::ChatMessage;

/// The section every AI function's documentation belongs to.
pub(crate) const DOC_SECTION: DocSection = DocSection {
    include: true,
    label: "AI Functions",
    description: Some("Functions that ask a language model, one request per distinct input"),
};

/// One SQL function answered by a language model.
///
/// A function turns its text arguments into chat messages and the model's answer into
/// a value of its return type. NULL arguments give NULL without a request; so do empty
/// (or blank) texts, which have nothing to ask about.
pub trait AiFunction: Send + Sync + Debug + 'static {
    /// The SQL name.
    fn name(&self) -> &'static str;

    /// Names of the text arguments, in order (all required).
    fn arg_names(&self) -> &'static [&'static str];

    /// Description, syntax and SQL example, for `SHOW FUNCTIONS` and `information_schema`.
    fn documentation(&self) -> &Documentation;

    /// The chat messages asking the model about one row's arguments.
    fn messages(&self, args: &[&str]) -> Vec<ChatMessage>;

    /// The SQL type of the result.
    fn return_type(&self) -> DataType {
        DataType::Utf8
    }

    /// Turns the model's answer into the row's value, or says why it is not acceptable.
    fn parse(&self, answer: &str) -> Result<ScalarValue, String>;
}

/// Every AI function blossom provides.
pub fn all() -> Vec<Arc<dyn AiFunction>> {
    vec![
        Arc::new(Generate),
        Arc::new(Enhance),
        Arc::new(Insights),
        Arc::new(Sentiment),
    ]
}

/// Every AI function as a DataFusion scalar UDF, ready to register.
pub fn udfs() -> Vec<ScalarUDF> {
    all()
        .into_iter()
        .map(|f| ScalarUDF::new_from_impl(AiUdf::new(f)))
        .collect()
}

/// The answer as a UTF-8 value, trimmed of surrounding whitespace.
pub(crate) fn text_answer(answer: &str) -> Result<ScalarValue, String> {
    Ok(ScalarValue::Utf8(Some(answer.trim().to_string())))
}
