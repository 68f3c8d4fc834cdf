//! The AI functions, one per file: each holds its prompt, its return type and its answer
//! parser. They know nothing of HTTP; [`crate::execution`] runs them through the
//! [`crate::dispatch::Dispatcher`].

mod ai_filter;
mod ai_match;
mod ai_reduce;
mod ai_score;
mod args;
mod categorize;
mod chunks;
mod cosine_similarity;
mod embed;
mod enhance;
mod extract;
mod extract_sql;
mod generate;
mod insights;
mod options;
pub mod pack;
#[cfg(test)]
mod proptests;
mod schema;
mod sentiment;
mod summarize;
mod translate;
mod udf;

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{DocSection, Documentation, DocumentationBuilder, ScalarUDF};

pub use ai_filter::AiFilter;
pub use ai_match::{AiMatch, BLOCK_INSTRUCTION};
pub use ai_reduce::AiReduce;
pub use ai_score::AiScore;
pub(crate) use args::text_list_type;
pub use args::{ArgSpec, BoundArgs, Constants, Param, ParamKind, Stage};
pub use categorize::Categorize;
pub use chunks::{Layout, NoRoom, chunk_items, split_text};
pub use cosine_similarity::CosineSimilarity;
pub use embed::Embed;
pub use enhance::Enhance;
pub use extract::Extract;
pub use extract_sql::ExtractPlanner;
pub use generate::Generate;
pub use insights::Insights;
pub use options::{CallOptions, OPTION_KEYS};
pub use schema::{FieldType, ScalarKind, SchemaField, StructSchema};
pub use sentiment::Sentiment;
pub use summarize::Summarize;
pub use translate::Translate;
pub use udf::AiUdf;

use crate::provider::{AnswerFormat, ChatMessage};

/// The section every AI function's documentation belongs to.
pub(crate) const DOC_SECTION: DocSection = DocSection {
    include: true,
    label: "AI Functions",
    description: Some("Functions that ask a language model, one request per distinct input"),
};

/// What the `options` argument of every AI function documents.
const OPTIONS_DOC: &str = "Optional, last: per-call options as a JSON object string literal, \
e.g. '{\"model\": \"mistral\", \"temperature\": 0.2, \"max_answer_tokens\": 200}'. They override \
the session's blossom.model, blossom.temperature and blossom.max_answer_tokens for this call.";

/// Documents the optional `options` argument every AI function takes last.
pub(crate) fn with_options_argument(builder: DocumentationBuilder) -> DocumentationBuilder {
    builder.with_argument("options", OPTIONS_DOC)
}

/// One SQL function answered by a language model.
///
/// A function turns one row's text arguments (and the call's literal arguments) into
/// chat messages, and the model's answer into a value of its return type. NULL
/// arguments give NULL without a request; so do empty (or blank) texts, which have
/// nothing to ask about.
///
/// ```sql
/// SELECT sentiment(text), categorize(text, 'bug', 'feature') FROM 'data/reviews.csv';
/// ```
pub trait AiFunction: Send + Sync + Debug + 'static {
    /// The SQL name.
    fn name(&self) -> &'static str;

    /// The parameters, checked at planning time (see [`ArgSpec`]).
    fn spec(&self) -> &'static ArgSpec;

    /// Description, syntax and SQL example, for `SHOW FUNCTIONS` and `information_schema`.
    fn documentation(&self) -> &Documentation;

    /// The chat messages asking the model about one row: `args` holds the row's values
    /// of the text parameters in order, `constants` the call's literal arguments.
    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage>;

    /// Messages asking again, more firmly, after an answer [`AiFunction::parse`] refused;
    /// `None` (the default) makes a refused answer an error for the row at once. The
    /// messages must differ from [`AiFunction::messages`], so the request does too.
    fn firmer_messages(&self, _args: &[&str], _constants: &Constants) -> Option<Vec<ChatMessage>> {
        None
    }

    /// Whether rows may be packed several to a request (`blossom.pack_rows`): for
    /// functions with short answers whose messages are an instruction that does not
    /// depend on the row's text, then that text as the last (user) message. The answer
    /// for each packed row goes through [`AiFunction::parse`] like a single answer.
    fn packable(&self) -> bool {
        false
    }

    /// The longest row text, in characters, packed with others; a longer one is asked
    /// on its own. Functions whose answers any text satisfies (so a packed answer could
    /// not be checked) keep it short.
    fn max_packed_text_chars(&self) -> usize {
        pack::MAX_PACKED_TEXT_CHARS
    }

    /// `Some` for a function answered by the embeddings endpoint rather than chat
    /// (`embed()`), with the vector length to ask for (`None`: the model's own). Its
    /// [`AiFunction::messages`] must end with the text to embed; the answer
    /// [`AiFunction::parse`] gets is the vector as a JSON array.
    fn embeds(&self, _constants: &Constants) -> Option<Option<u32>> {
        None
    }

    /// The SQL type of the result.
    fn return_type(&self) -> DataType {
        DataType::Utf8
    }

    /// The SQL type of the result of a call with these literal arguments; the default is
    /// [`AiFunction::return_type`]. A function whose type depends on a literal (such as
    /// `ai_extract()`'s schema) says here why there is none, as a phrase following
    /// `name(): `.
    fn return_type_for(&self, _constants: &Constants) -> Result<DataType, String> {
        Ok(self.return_type())
    }

    /// The answer format the requests ask for (e.g. a JSON schema); `None` (the
    /// default) asks for none. The provider writes it in its protocol's terms.
    fn response_format(&self, _constants: &Constants) -> Option<AnswerFormat> {
        None
    }

    /// Turns the model's answer into the row's value, or says why it is not acceptable.
    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String>;

    /// Like [`AiFunction::parse`], but a value may come with problems: each one makes
    /// the row count as failed (recorded with the class `invalid_field`), while the row
    /// keeps the value when `blossom.on_error = 'null'`. The default has none.
    fn parse_lenient(
        &self,
        answer: &str,
        constants: &Constants,
    ) -> Result<(ScalarValue, Vec<String>), String> {
        self.parse(answer, constants)
            .map(|value| (value, Vec::new()))
    }
    /// For a function that reduces a list of texts (its [`ParamKind::TextList`]
    /// parameter) to one answer: how to ask over parts of the list and combine the
    /// partial answers, so a list too long for one prompt is reduced hierarchically.
    /// `None` (the default) for functions asking about one text per row.
    fn reduction(&self) -> Option<&dyn ReductionPlan> {
        None
    }
}

/// How a function reducing a list of texts to one answer asks about it. The planner
/// splits the list into chunks whose prompts fit in `blossom.max_prompt_chars` (see
/// [`chunk_items`]), asks [`ReductionPlan::chunk_messages`] over each chunk, then
/// [`ReductionPlan::combine_messages`] over the partial answers, again in chunks if they
/// do not fit together, until one answer is left; [`AiFunction::parse`] reads that one.
///
/// Prompt sizes are measured from the messages themselves, so both methods must render
/// their items so that a prompt's characters grow by the same amount per item plus the
/// item's own characters (fixed delimiters around each item, no numbering).
///
/// ```sql
/// SELECT category, ai_reduce(array_agg(text), 'the three most common complaints')
/// FROM 'data/reviews.csv' GROUP BY category;
/// ```
pub trait ReductionPlan: Send + Sync + Debug {
    /// Messages asking about `items` (the whole list, or one chunk of it); `args` holds
    /// the row's values of the other per-row parameters, in order.
    fn chunk_messages(
        &self,
        items: &[&str],
        args: &[&str],
        constants: &Constants,
    ) -> Vec<ChatMessage>;

    /// Messages combining `partials`, answers over parts of the list, into one answer.
    fn combine_messages(
        &self,
        partials: &[&str],
        args: &[&str],
        constants: &Constants,
    ) -> Vec<ChatMessage>;
}

/// Names that SQL syntax gives a meaning to although no function is registered under
/// them (the parser turns `EXTRACT(day FROM d)`, `POSITION(a IN b)`, ... into other
/// calls), so an AI function taking one would be unreachable or ambiguous.
pub const SQL_SYNTAX_NAMES: &[&str] = &[
    "extract",
    "position",
    "substring",
    "trim",
    "overlay",
    "ceil",
    "floor",
    "cast",
    "try_cast",
    "convert",
    "interval",
];

/// Every AI function blossom provides.
///
/// The naming rule: an AI function keeps a short name (`sentiment`, `summarize`) only
/// when DataFusion gives that name no meaning, neither a built-in function of any kind
/// (scalar, aggregate, window, table) nor SQL syntax ([`SQL_SYNTAX_NAMES`]); otherwise
/// it takes the `ai_` prefix (`ai_translate`, `ai_extract`, `ai_filter`, `ai_reduce`),
/// as peers name theirs. A built-in is never shadowed. An old spelling stays only where
/// no built-in call can be written the same way: `extract(text, 'name TYPE, ...')`
/// (see [`ExtractPlanner`]).
pub fn all() -> Vec<Arc<dyn AiFunction>> {
    vec![
        Arc::new(Generate),
        Arc::new(Enhance),
        Arc::new(Insights),
        Arc::new(Sentiment),
        Arc::new(Summarize),
        Arc::new(Translate),
        Arc::new(Categorize),
        Arc::new(AiFilter),
        Arc::new(AiMatch),
        Arc::new(AiScore),
        Arc::new(Extract),
        Arc::new(AiReduce),
        Arc::new(Embed),
    ]
}

/// Every AI function as a DataFusion scalar UDF, plus `cosine_similarity`, ready to
/// register.
pub fn udfs() -> Vec<ScalarUDF> {
    all()
        .into_iter()
        .map(|f| ScalarUDF::new_from_impl(AiUdf::new(f)))
        .chain([ScalarUDF::new_from_impl(CosineSimilarity::default())])
        .collect()
}

/// The answer as a UTF-8 value, trimmed of surrounding whitespace.
pub(crate) fn text_answer(answer: &str) -> Result<ScalarValue, String> {
    Ok(ScalarValue::Utf8(Some(answer.trim().to_string())))
}

/// Argument `i` of a row (empty when missing, which binding rules out).
pub(crate) fn arg<'a>(args: &[&'a str], i: usize) -> &'a str {
    args.get(i).copied().unwrap_or_default()
}

/// An answer or a label reduced to what matters for matching: surrounding whitespace,
/// quotes, markdown emphasis, brackets and trailing punctuation dropped, inner
/// whitespace collapsed, lower case. `**Tech.**`, `"tech"` and ` TECH ` are all `tech`.
pub(crate) fn answer_key(text: &str) -> String {
    const BOTH: &[char] = &[
        '*', '_', '`', '"', '\'', '“', '”', '‘', '’', '«', '»', '(', ')', '[', ']', '{', '}', '<',
        '>',
    ];
    const LEADING: &[char] = &['#', '-', '•'];
    const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '。'];
    let trimmed = text
        .trim_start_matches(|c: char| {
            c.is_whitespace() || BOTH.contains(&c) || LEADING.contains(&c)
        })
        .trim_end_matches(|c: char| {
            c.is_whitespace() || BOTH.contains(&c) || TRAILING.contains(&c)
        });
    trimmed
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use datafusion::execution::SessionStateBuilder;

    use super::*;

    /// The naming rule of [`all`]: no AI function (nor `cosine_similarity`) takes a name
    /// DataFusion already gives a meaning to.
    #[test]
    fn no_ai_function_shadows_a_built_in() {
        let state = SessionStateBuilder::new().with_default_features().build();
        let mut taken: BTreeSet<String> = SQL_SYNTAX_NAMES.iter().map(|s| s.to_string()).collect();
        for udf in state.scalar_functions().values() {
            taken.insert(udf.name().to_string());
            taken.extend(udf.aliases().iter().cloned());
        }
        for udaf in state.aggregate_functions().values() {
            taken.insert(udaf.name().to_string());
            taken.extend(udaf.aliases().iter().cloned());
        }
        for udwf in state.window_functions().values() {
            taken.insert(udwf.name().to_string());
            taken.extend(udwf.aliases().iter().cloned());
        }
        taken.extend(state.table_functions().keys().cloned());
        assert!(taken.contains("translate") && taken.contains("date_part"));
        let ours: Vec<ScalarUDF> = udfs();
        assert!(ours.len() > 10);
        for udf in ours {
            let names =
                std::iter::once(udf.name().to_string()).chain(udf.aliases().iter().cloned());
            for name in names {
                assert!(
                    !taken.contains(&name),
                    "{name} shadows a DataFusion built-in"
                );
            }
        }
    }
}
