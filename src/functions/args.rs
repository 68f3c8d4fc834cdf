//! The argument rules of the AI functions, in one place: each function declares an
//! [`ArgSpec`] (required, optional and variadic parameters; the per-call options object
//! may follow them all). Coercion casts per-row arguments to text; binding checks a call
//! at planning time, before any request, and parses its literal arguments once.
//!
//! An options argument is told apart from a text argument by position and form: it comes
//! after all required parameters, it is the last argument, and it is a string literal
//! starting with `{`. So `summarize(text, '{"model": "mistral"}')` has options and no
//! `max_chars`, while `translate(text, '{...}')` asks for a translation into "{...}".

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, plan_datafusion_err, plan_err};

use super::answer_key as label_key;
use super::options::CallOptions;
use super::schema::StructSchema;
use crate::provider::truncate_chars;

/// What a parameter takes.
///
/// ```sql
/// -- text (Text), max_chars (PositiveInt):
/// SELECT summarize(text, 200) FROM 'data/articles.json';
/// -- text (Text), labels (Labels):
/// SELECT categorize(text, 'bug', 'feature', 'question') FROM 'data/reviews.csv';
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A value per row: a column or any expression. Numbers, dates, lists and other
    /// scalars are cast to text.
    Text,
    /// A value per row, like [`ParamKind::Text`], that tells the model what to do (a
    /// condition, a target language): written as a literal, it must not be blank, since
    /// the model would be sent an empty instruction.
    Instruction,
    /// A positive whole number written in the query (a literal).
    PositiveInt,
    /// Any finite number written in the query (a literal): whole or decimal, of any
    /// sign, such as the bounds of a score's range.
    Number,
    /// Labels written in the query: one or more text literals, or one `ARRAY[...]` of
    /// text literals. Only as the variadic parameter.
    Labels,
    /// The fields of a STRUCT result, a text literal such as
    /// `'name VARCHAR, price DOUBLE, tags VARCHAR[]'` (see [`StructSchema`]).
    Schema,
    /// A list of texts per row, such as `array_agg(text)` gives: a `List`, `LargeList`
    /// or `FixedSizeList` whose elements can be cast to text. It stays a list (of
    /// `Utf8`); a plain text is refused, since one text is not a list to reduce.
    TextList,
}

/// One named parameter of an AI function.
///
/// ```sql
/// SELECT translate(text, 'German') FROM 'data/reviews.csv';  -- text, target_language
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The name used in documentation and error messages.
    pub name: &'static str,
    /// What it takes.
    pub kind: ParamKind,
}

impl Param {
    /// A per-row text parameter.
    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Text,
        }
    }

    /// A per-row instruction (a condition, a language): a literal must not be blank.
    pub const fn instruction(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Instruction,
        }
    }

    /// A positive whole-number literal.
    pub const fn positive_int(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::PositiveInt,
        }
    }

    /// A number literal (whole or decimal, any sign).
    pub const fn number(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Number,
        }
    }

    /// A schema literal (`'name VARCHAR, price DOUBLE'`).
    pub const fn schema(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Schema,
        }
    }

    /// Labels given as literals (separate arguments or one array).
    pub const fn labels(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Labels,
        }
    }

    /// A per-row list of texts.
    pub const fn text_list(name: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::TextList,
        }
    }
}

/// The arguments a function takes: `required` parameters, then `optional` ones (each
/// may be left out from the end), or a `variadic` one taking one or more arguments; then,
/// for every function, an optional per-call options object.
///
/// ```sql
/// SELECT summarize(text), summarize(text, 80),
///        summarize(text, 80, '{"model": "mistral"}') FROM 'data/articles.json';
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Parameters every call gives, in order.
    pub required: &'static [Param],
    /// Parameters that may follow the required ones, in order.
    pub optional: &'static [Param],
    /// A parameter taking one or more arguments after the required ones.
    pub variadic: Option<Param>,
}

/// When a call is bound: literal-only arguments can be checked for being literals only
/// once constant expressions are folded.
///
/// ```sql
/// -- ARRAY['a', 'b'] is a function call until the optimizer folds it into a literal.
/// SELECT categorize(text, ARRAY['a', 'b']) FROM t;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// While the logical plan is built: values that are already literals are checked;
    /// an argument that is not (yet) a literal is let through.
    Logical,
    /// When the call is planned for execution: every literal-only argument must be a
    /// literal by now.
    Physical,
}

/// A call's literal arguments, parsed once at planning time.
///
/// ```sql
/// -- max_chars = 120 and the labels are constants of these calls:
/// SELECT summarize(text, 120), categorize(text, 'news', 'sports') FROM 'data/articles.json';
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constants {
    ints: Vec<(&'static str, u64)>,
    /// Number literals, as the bits of their `f64` (so that constants compare exactly).
    numbers: Vec<(&'static str, u64)>,
    labels: Vec<String>,
    schema: Option<StructSchema>,
}

impl Constants {
    /// The value of the whole-number parameter `name`, when the call gave it.
    pub fn int(&self, name: &str) -> Option<u64> {
        self.ints.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The value of the number parameter `name`, when the call gave it.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.numbers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bits)| f64::from_bits(*bits))
    }

    /// The labels, as the call spelled them (empty when the function takes none).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The parsed schema literal, when the function takes one and the call gave it.
    pub fn schema(&self) -> Option<&StructSchema> {
        self.schema.as_ref()
    }

    /// Constants with the given schema, for tests and callers outside SQL.
    pub fn with_schema(schema: StructSchema) -> Self {
        Self {
            schema: Some(schema),
            ..Self::default()
        }
    }

    /// Constants with the given labels, for tests and callers outside SQL.
    pub fn with_labels<I: IntoIterator<Item = S>, S: Into<String>>(labels: I) -> Self {
        Self {
            labels: labels.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Constants with the given number parameters, for tests and callers outside SQL.
    pub fn with_numbers(numbers: &[(&'static str, f64)]) -> Self {
        Self {
            numbers: numbers.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
            ..Self::default()
        }
    }

    /// Constants with one whole-number parameter, for tests and callers outside SQL.
    pub fn with_int(name: &'static str, value: u64) -> Self {
        Self {
            ints: vec![(name, value)],
            ..Self::default()
        }
    }
}

/// A call as checked at planning time: which arguments are evaluated per row, the
/// literal arguments and the per-call options.
///
/// ```sql
/// -- row_args = [0] (text); constants: labels; options: model mistral.
/// SELECT categorize(text, 'a', 'b', '{"model": "mistral"}') FROM t;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoundArgs {
    /// Positions of the arguments evaluated per row (the text and list parameters), in
    /// order.
    pub row_args: Vec<usize>,
    /// Which entry of `row_args` is the list parameter, when the function takes one.
    pub list_arg: Option<usize>,
    /// The literal arguments.
    pub constants: Constants,
    /// The per-call options (all unset when the call gives none).
    pub options: CallOptions,
}

impl ArgSpec {
    /// Only required parameters.
    pub const fn fixed(required: &'static [Param]) -> Self {
        Self {
            required,
            optional: &[],
            variadic: None,
        }
    }

    /// How a call is written, e.g. `summarize(text [, max_chars] [, options])`.
    pub fn usage(&self, function: &str) -> String {
        let mut parts: Vec<String> = self.required.iter().map(|p| p.name.to_string()).collect();
        if let Some(v) = self.variadic {
            parts.push(format!("{} [, {} ...]", v.name, v.name));
        }
        let mut usage = format!("{function}({}", parts.join(", "));
        for p in self.optional {
            usage.push_str(&format!(" [, {}]", p.name));
        }
        usage.push_str(" [, options])");
        usage
    }

    /// The parameter an argument at `position` fills, when it is not the options.
    fn param_at(&self, position: usize) -> Option<Param> {
        if let Some(p) = self.required.get(position) {
            return Some(*p);
        }
        let rest = position - self.required.len();
        match self.variadic {
            Some(v) => Some(v),
            None => self.optional.get(rest).copied(),
        }
    }

    /// The fewest positional arguments (not counting the options).
    fn min_positional(&self) -> usize {
        self.required.len() + usize::from(self.variadic.is_some())
    }

    /// The most positional arguments (not counting the options).
    fn max_positional(&self) -> usize {
        match self.variadic {
            Some(_) => usize::MAX,
            None => self.required.len() + self.optional.len(),
        }
    }

    /// The types arguments are coerced to: text parameters become `Utf8` when they can
    /// be cast to it; everything else keeps its type (so literals stay literals) and is
    /// checked by [`ArgSpec::bind`], whose messages name the argument.
    pub fn coerce_types(&self, arg_types: &[DataType]) -> Vec<DataType> {
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match self.param_at(i) {
                Some(p)
                    if matches!(p.kind, ParamKind::Text | ParamKind::Instruction)
                        && castable_to_text(t) =>
                {
                    DataType::Utf8
                }
                Some(p) if p.kind == ParamKind::TextList && is_list_of_castable(t) => {
                    text_list_type()
                }
                _ => t.clone(),
            })
            .collect()
    }

    /// Argument types for `information_schema` and `SHOW FUNCTIONS`: the required
    /// parameters, then each count of optional ones (or one label).
    pub fn example_types(&self) -> Vec<Vec<DataType>> {
        let type_of = |p: &Param| match p.kind {
            ParamKind::Text | ParamKind::Instruction | ParamKind::Labels | ParamKind::Schema => {
                DataType::Utf8
            }
            ParamKind::PositiveInt => DataType::Int64,
            ParamKind::Number => DataType::Float64,
            ParamKind::TextList => text_list_type(),
        };
        let base: Vec<DataType> = self.required.iter().map(type_of).collect();
        let mut forms = Vec::new();
        match self.variadic {
            Some(v) => {
                let mut form = base;
                form.push(type_of(&v));
                forms.push(form);
            }
            None => {
                for count in 0..=self.optional.len() {
                    let mut form = base.clone();
                    form.extend(self.optional.iter().take(count).map(type_of));
                    forms.push(form);
                }
            }
        }
        forms
    }

    /// Checks a call of `function` with arguments of `arg_types`, where `values` holds
    /// the arguments that are literals, and parses its literal arguments and options.
    /// Errors are planning errors naming the function and the argument.
    pub fn bind(
        &self,
        function: &str,
        arg_types: &[DataType],
        values: &[Option<&ScalarValue>],
        stage: Stage,
    ) -> Result<BoundArgs> {
        let n = arg_types.len();
        let value = |i: usize| values.get(i).copied().flatten();
        let has_options = n > self.required.len() && value(n - 1).is_some_and(is_options_literal);
        let positional = n - usize::from(has_options);
        if positional < self.min_positional() {
            return match self.variadic {
                Some(v) if positional == self.required.len() => plan_err!(
                    "{function}(): no {}s given; usage: {}",
                    v.name,
                    self.usage(function)
                ),
                _ => plan_err!(
                    "{function}(): too few arguments ({n}); usage: {}",
                    self.usage(function)
                ),
            };
        }
        if positional > self.max_positional() {
            if !has_options && positional == self.max_positional() + 1 {
                return plan_err!(
                    "{function}(): argument {n} must be the options, a JSON object string \
                     literal such as '{{\"model\": \"mistral\", \"temperature\": 0.2}}', got {}; \
                     usage: {}",
                    describe(value(n - 1), stage),
                    self.usage(function)
                );
            }
            return plan_err!(
                "{function}(): too many arguments ({n}); usage: {}",
                self.usage(function)
            );
        }

        let mut bound = BoundArgs::default();
        let mut labels: Vec<String> = Vec::new();
        let mut labels_known = true;
        let mut label_args = 0;
        let mut array_given = false;
        for (i, t) in arg_types.iter().enumerate().take(positional) {
            let Some(param) = self.param_at(i) else {
                return plan_err!("{function}(): unexpected argument {}", i + 1);
            };
            let at = || format!("{function}(): argument {} ({})", i + 1, param.name);
            match param.kind {
                ParamKind::Text | ParamKind::Instruction => {
                    if param.kind == ParamKind::Instruction
                        && value(i)
                            .and_then(|v| v.try_as_str().flatten())
                            .is_some_and(|s| s.trim().is_empty())
                    {
                        return plan_err!(
                            "{} must not be empty: it is what the model is asked to do; \
                             usage: {}",
                            at(),
                            self.usage(function)
                        );
                    }
                    if !castable_to_text(t) {
                        return plan_err!(
                            "{} must be text, got {t}; convert it first, e.g. \
                             CAST(... AS VARCHAR) or array_to_string(...)",
                            at()
                        );
                    }
                    bound.row_args.push(i);
                }
                ParamKind::TextList => {
                    if !(t.is_null() || is_list_of_castable(t)) {
                        return plan_err!(
                            "{} must be a list of texts, e.g. array_agg(column), got {}; \
                             to reduce one text, wrap it: make_array(...)",
                            at(),
                            describe_type(t, Stage::Logical)
                        );
                    }
                    bound.list_arg = Some(bound.row_args.len());
                    bound.row_args.push(i);
                }
                ParamKind::PositiveInt => match value(i) {
                    Some(v) => match positive_int(v) {
                        Some(number) => bound.constants.ints.push((param.name, number)),
                        None => {
                            return plan_err!(
                                "{} must be a positive whole number, got {}",
                                at(),
                                shown(v)
                            );
                        }
                    },
                    None if stage == Stage::Physical || !(t.is_integer() || t.is_null()) => {
                        return plan_err!(
                            "{} must be a positive whole number written in the query, got {}",
                            at(),
                            describe_type(t, stage)
                        );
                    }
                    None => {}
                },
                ParamKind::Number => match value(i) {
                    Some(v) => match finite_number(v) {
                        Some(number) => {
                            bound.constants.numbers.push((param.name, number.to_bits()))
                        }
                        None => {
                            return plan_err!("{} must be a number, got {}", at(), shown(v));
                        }
                    },
                    None if stage == Stage::Physical || !(t.is_numeric() || t.is_null()) => {
                        return plan_err!(
                            "{} must be a number written in the query, got {}",
                            at(),
                            describe_number_type(t, stage)
                        );
                    }
                    None => {}
                },
                ParamKind::Labels => {
                    label_args += 1;
                    if !is_text_type(t) && !is_text_list_type(t) {
                        return plan_err!(
                            "{} must be a text literal or an ARRAY of text literals, got {t}",
                            at()
                        );
                    }
                    array_given |= is_text_list_type(t);
                    match value(i) {
                        Some(v) => labels.extend(
                            label_values(v)
                                .map_err(|why| plan_datafusion_err!("{}: {why}", at()))?,
                        ),
                        None if stage == Stage::Physical => {
                            return plan_err!(
                                "{} must be written in the query (a text literal or \
                                 ARRAY['...', ...]), not a column or other expression",
                                at()
                            );
                        }
                        None => labels_known = false,
                    }
                }
                // Always a literal, even while the logical plan is built: the schema
                // gives the call's return type.
                ParamKind::Schema => match value(i).map(|v| (v, v.try_as_str())) {
                    Some((_, Some(Some(text)))) => {
                        let schema = StructSchema::parse(text)
                            .map_err(|why| plan_datafusion_err!("{} {why}", at()))?;
                        bound.constants.schema = Some(schema);
                    }
                    Some((v, _)) => {
                        return plan_err!(
                            "{} must be a text literal such as 'name VARCHAR, price DOUBLE', \
                             got {}",
                            at(),
                            shown(v)
                        );
                    }
                    None => {
                        return plan_err!(
                            "{} must be a text literal written in the query, such as \
                             'name VARCHAR, price DOUBLE', got {}",
                            at(),
                            describe(None, stage)
                        );
                    }
                },
            }
        }
        if array_given && label_args > 1 {
            return plan_err!(
                "{function}(): give the labels either as separate arguments or as one \
                 ARRAY, not both; usage: {}",
                self.usage(function)
            );
        }
        if self.variadic.is_some() && labels_known {
            check_labels(function, &labels)?;
        }
        bound.constants.labels = labels;
        if has_options {
            let text = value(n - 1)
                .and_then(ScalarValue::try_as_str)
                .flatten()
                .unwrap_or_default();
            bound.options = CallOptions::parse(text).map_err(|why| {
                plan_datafusion_err!("{function}(): argument {n} (options) {why}")
            })?;
        }
        Ok(bound)
    }
}

/// True for a string literal starting with `{` (after leading whitespace).
fn is_options_literal(value: &ScalarValue) -> bool {
    value
        .try_as_str()
        .flatten()
        .is_some_and(|s| s.trim_start().starts_with('{'))
}

fn castable_to_text(t: &DataType) -> bool {
    can_cast_types(t, &DataType::Utf8)
}

/// The type a list parameter is coerced to: a list of nullable `Utf8` items.
pub(crate) fn text_list_type() -> DataType {
    DataType::new_list(DataType::Utf8, true)
}

/// True for a list whose elements can be cast to text.
fn is_list_of_castable(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            castable_to_text(f.data_type())
        }
        _ => false,
    }
}

fn is_text_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

fn is_text_list_type(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            is_text_type(f.data_type())
        }
        _ => false,
    }
}

/// The positive whole number a literal holds.
fn positive_int(value: &ScalarValue) -> Option<u64> {
    let signed = |v: &Option<i64>| v.filter(|v| *v > 0).map(|v| v.unsigned_abs());
    match value {
        ScalarValue::Int8(v) => signed(&v.map(i64::from)),
        ScalarValue::Int16(v) => signed(&v.map(i64::from)),
        ScalarValue::Int32(v) => signed(&v.map(i64::from)),
        ScalarValue::Int64(v) => signed(v),
        ScalarValue::UInt8(v) => v.map(u64::from).filter(|v| *v > 0),
        ScalarValue::UInt16(v) => v.map(u64::from).filter(|v| *v > 0),
        ScalarValue::UInt32(v) => v.map(u64::from).filter(|v| *v > 0),
        ScalarValue::UInt64(v) => v.filter(|v| *v > 0),
        _ => None,
    }
}

/// The finite number a numeric literal holds (not a text that looks like one).
fn finite_number(value: &ScalarValue) -> Option<f64> {
    if value.is_null() || !value.data_type().is_numeric() {
        return None;
    }
    match value.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(v)) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// The labels a literal holds: a text, or an array of texts.
fn label_values(value: &ScalarValue) -> std::result::Result<Vec<String>, String> {
    if let Some(text) = value.try_as_str() {
        return match text {
            Some(text) => Ok(vec![text.to_string()]),
            None => Err("a label is NULL".to_string()),
        };
    }
    let array = match value {
        ScalarValue::List(a) if !a.is_null(0) => a.value(0),
        ScalarValue::LargeList(a) if !a.is_null(0) => a.value(0),
        ScalarValue::FixedSizeList(a) if !a.is_null(0) => a.value(0),
        ScalarValue::List(_) | ScalarValue::LargeList(_) | ScalarValue::FixedSizeList(_) => {
            return Err("the label list is NULL".to_string());
        }
        ScalarValue::Null => return Err("a label is NULL".to_string()),
        other => return Err(format!("labels must be text, got {}", other.data_type())),
    };
    let texts = cast(&array, &DataType::Utf8).map_err(|e| format!("labels must be text: {e}"))?;
    let texts = texts
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| "labels must be text".to_string())?;
    texts
        .iter()
        .map(|label| {
            label
                .map(str::to_string)
                .ok_or_else(|| "a label is NULL".to_string())
        })
        .collect()
}

/// At least one label, none blank, no two the same once case, spacing and surrounding
/// punctuation are ignored (the answer could not tell them apart).
fn check_labels(function: &str, labels: &[String]) -> Result<()> {
    if labels.is_empty() {
        return plan_err!("{function}(): the label list is empty; give at least one label");
    }
    let mut keys: Vec<(String, &str)> = Vec::with_capacity(labels.len());
    for label in labels {
        let key = label_key(label);
        if key.is_empty() {
            return plan_err!(
                "{function}(): the label {label:?} is blank; every label needs a name"
            );
        }
        if let Some((_, first)) = keys.iter().find(|(k, _)| *k == key) {
            return plan_err!(
                "{function}(): the labels {first:?} and {label:?} are the same label once \
                 case and spacing are ignored; give each label once"
            );
        }
        keys.push((key, label));
    }
    Ok(())
}

/// A literal as shown in an error message.
fn shown(value: &ScalarValue) -> String {
    match value.try_as_str() {
        Some(Some(text)) => format!("'{}'", truncate_chars(text, 40)),
        Some(None) => "NULL".to_string(),
        None if value.is_null() => "NULL".to_string(),
        None => value.to_string(),
    }
}

/// What an argument is, for "got ..." in an error message.
fn describe(value: Option<&ScalarValue>, stage: Stage) -> String {
    match value {
        Some(v) => shown(v),
        None if stage == Stage::Physical => "a column or other expression".to_string(),
        None => "a column or expression, not a literal".to_string(),
    }
}

fn describe_number_type(t: &DataType, stage: Stage) -> String {
    if stage == Stage::Physical && (t.is_numeric() || t.is_null()) {
        "a column or other expression".to_string()
    } else {
        format!("a value of type {t}")
    }
}

fn describe_type(t: &DataType, stage: Stage) -> String {
    if stage == Stage::Physical && (t.is_integer() || t.is_null()) {
        "a column or other expression".to_string()
    } else {
        format!("a value of type {t}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Field;

    use super::*;

    const ONE: ArgSpec = ArgSpec::fixed(&[Param::text("text")]);
    const SUMMARIZE: ArgSpec = ArgSpec {
        required: &[Param::text("text")],
        optional: &[Param::positive_int("max_chars")],
        variadic: None,
    };
    const LABELS: ArgSpec = ArgSpec {
        required: &[Param::text("text")],
        optional: &[],
        variadic: Some(Param::labels("label")),
    };

    fn utf8(s: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(s.to_string()))
    }

    /// Binds a call whose arguments are all literals.
    fn bind_literals(spec: &ArgSpec, values: &[ScalarValue]) -> Result<BoundArgs> {
        let types: Vec<DataType> = values.iter().map(ScalarValue::data_type).collect();
        let refs: Vec<Option<&ScalarValue>> = values.iter().map(Some).collect();
        spec.bind("f", &types, &refs, Stage::Physical)
    }

    fn err(result: Result<BoundArgs>) -> String {
        result.expect_err("an error").to_string()
    }

    #[test]
    fn coerces_text_and_keeps_literal_only_types() {
        let list = DataType::new_list(DataType::Utf8, true);
        assert_eq!(
            LABELS.coerce_types(&[DataType::Int64, list.clone(), DataType::Utf8]),
            vec![DataType::Utf8, list, DataType::Utf8]
        );
        assert_eq!(
            SUMMARIZE.coerce_types(&[DataType::Date32, DataType::Int32, DataType::Utf8View]),
            vec![DataType::Utf8, DataType::Int32, DataType::Utf8View]
        );
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Default::default()),
                false,
            )),
            false,
        );
        assert_eq!(ONE.coerce_types(std::slice::from_ref(&map)), vec![map]);
    }

    #[test]
    fn refuses_what_cannot_be_text() {
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Default::default()),
                false,
            )),
            false,
        );
        let e = err(ONE.bind("sentiment", &[map], &[None], Stage::Logical));
        assert!(
            e.contains("sentiment(): argument 1 (text) must be text"),
            "{e}"
        );
    }

    #[test]
    fn counts_arguments() {
        let e = err(ONE.bind("enhance", &[], &[], Stage::Logical));
        assert!(e.contains("enhance(): too few arguments (0)"), "{e}");
        assert!(e.contains("usage: enhance(text [, options])"), "{e}");
        let e = err(bind_literals(
            &SUMMARIZE,
            &[utf8("a"), utf8("b"), utf8("c")],
        ));
        assert!(e.contains("f(): argument 3 must be the options"), "{e}");
        assert!(e.contains("got 'c'"), "{e}");
        let e = err(bind_literals(
            &SUMMARIZE,
            &[
                utf8("a"),
                ScalarValue::Int64(Some(3)),
                utf8("b"),
                utf8("{}"),
            ],
        ));
        assert!(e.contains("too many arguments (4)"), "{e}");
        let e = err(bind_literals(&LABELS, &[utf8("a")]));
        assert!(e.contains("f(): no labels given"), "{e}");
        assert!(
            e.contains("usage: f(text, label [, label ...] [, options])"),
            "{e}"
        );
        // A column where the options must be.
        let e = err(ONE.bind(
            "generate",
            &[DataType::Utf8, DataType::Utf8],
            &[None, None],
            Stage::Logical,
        ));
        assert!(
            e.contains("generate(): argument 2 must be the options"),
            "{e}"
        );
    }

    #[test]
    fn tells_options_from_positional_arguments() {
        let bound = bind_literals(&SUMMARIZE, &[utf8("t"), utf8(r#" {"model": "m"}"#)]).unwrap();
        assert_eq!(bound.options.model.as_deref(), Some("m"));
        assert_eq!(bound.constants.int("max_chars"), None);
        assert_eq!(bound.row_args, vec![0]);

        let bound = bind_literals(
            &SUMMARIZE,
            &[
                utf8("t"),
                ScalarValue::Int64(Some(40)),
                utf8(r#"{"temperature": 0.5}"#),
            ],
        )
        .unwrap();
        assert_eq!(bound.constants.int("max_chars"), Some(40));
        assert_eq!(bound.options.temperature, Some(0.5));

        // The only argument is never the options: it is the text.
        let bound = bind_literals(&ONE, &[utf8("{not options}")]).unwrap();
        assert_eq!(bound.options, CallOptions::default());

        let e = err(bind_literals(&ONE, &[utf8("t"), utf8("{nope")]));
        assert!(
            e.contains("f(): argument 2 (options) is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn numbers_are_literals_of_any_numeric_type_and_sign() {
        const RANGE: ArgSpec = ArgSpec::fixed(&[
            Param::text("text"),
            Param::number("low"),
            Param::number("high"),
        ]);
        let bound = bind_literals(
            &RANGE,
            &[
                utf8("t"),
                ScalarValue::Int64(Some(-2)),
                ScalarValue::Float64(Some(4.5)),
            ],
        )
        .unwrap();
        assert_eq!(bound.constants.number("low"), Some(-2.0));
        assert_eq!(bound.constants.number("high"), Some(4.5));
        assert_eq!(bound.row_args, vec![0]);
        let decimal = ScalarValue::Decimal128(Some(125), 5, 2);
        let bound =
            bind_literals(&RANGE, &[utf8("t"), ScalarValue::UInt8(Some(0)), decimal]).unwrap();
        assert_eq!(bound.constants.number("high"), Some(1.25));
        for bad in [
            utf8("5"),
            ScalarValue::Float64(None),
            ScalarValue::Float64(Some(f64::NAN)),
            ScalarValue::Float64(Some(f64::INFINITY)),
            ScalarValue::Boolean(Some(true)),
        ] {
            let e = err(bind_literals(
                &RANGE,
                &[utf8("t"), ScalarValue::Int64(Some(1)), bad.clone()],
            ));
            assert!(
                e.contains("f(): argument 3 (high) must be a number, got"),
                "{bad:?}: {e}"
            );
        }
        let types = [DataType::Utf8, DataType::Int64, DataType::Float64];
        let e = err(RANGE.bind("f", &types, &[None, None, None], Stage::Physical));
        assert!(
            e.contains("argument 2 (low) must be a number written in the query, got a column"),
            "{e}"
        );
        assert!(
            RANGE
                .bind("f", &types, &[None, None, None], Stage::Logical)
                .is_ok()
        );
        let e = err(RANGE.bind(
            "f",
            &[DataType::Utf8, DataType::Utf8, DataType::Int64],
            &[None, None, None],
            Stage::Logical,
        ));
        assert!(e.contains("got a value of type Utf8"), "{e}");
    }

    #[test]
    fn positive_ints_must_be_literal_and_positive() {
        for bad in [
            ScalarValue::Int64(Some(0)),
            ScalarValue::Int32(Some(-3)),
            ScalarValue::Int64(None),
            ScalarValue::Float64(Some(2.5)),
            utf8("100"),
        ] {
            let e = err(bind_literals(&SUMMARIZE, &[utf8("t"), bad.clone()]));
            assert!(
                e.contains("f(): argument 2 (max_chars) must be a positive whole number"),
                "{bad:?}: {e}"
            );
        }
        let e = err(SUMMARIZE.bind(
            "f",
            &[DataType::Utf8, DataType::Int64],
            &[None, None],
            Stage::Physical,
        ));
        assert!(e.contains("written in the query, got a column"), "{e}");
        // Not yet a literal while the logical plan is built: checked later.
        assert!(
            SUMMARIZE
                .bind(
                    "f",
                    &[DataType::Utf8, DataType::Int64],
                    &[None, None],
                    Stage::Logical
                )
                .is_ok()
        );
        let e = err(SUMMARIZE.bind(
            "f",
            &[DataType::Utf8, DataType::Float64],
            &[None, None],
            Stage::Logical,
        ));
        assert!(e.contains("got a value of type Float64"), "{e}");
        let bound = bind_literals(&SUMMARIZE, &[utf8("t"), ScalarValue::UInt8(Some(7))]).unwrap();
        assert_eq!(bound.constants.int("max_chars"), Some(7));
    }

    #[test]
    fn reads_labels_from_arguments_or_one_array() {
        let bound = bind_literals(&LABELS, &[utf8("t"), utf8("Tech"), utf8("Sports")]).unwrap();
        assert_eq!(bound.constants.labels(), ["Tech", "Sports"]);
        assert_eq!(bound.row_args, vec![0]);

        let array = ScalarValue::List(ScalarValue::new_list_nullable(
            &[utf8("a"), utf8("b c")],
            &DataType::Utf8,
        ));
        let bound = bind_literals(&LABELS, &[utf8("t"), array.clone()]).unwrap();
        assert_eq!(bound.constants.labels(), ["a", "b c"]);

        let e = err(bind_literals(&LABELS, &[utf8("t"), array, utf8("x")]));
        assert!(
            e.contains("either as separate arguments or as one ARRAY"),
            "{e}"
        );

        let empty = ScalarValue::List(ScalarValue::new_list_nullable(&[], &DataType::Utf8));
        let e = err(bind_literals(&LABELS, &[utf8("t"), empty]));
        assert!(e.contains("f(): the label list is empty"), "{e}");

        let e = err(bind_literals(
            &LABELS,
            &[utf8("t"), utf8("Tech"), utf8(" tech ")],
        ));
        assert!(
            e.contains("the labels \"Tech\" and \" tech \" are the same"),
            "{e}"
        );

        let e = err(bind_literals(&LABELS, &[utf8("t"), utf8("  ")]));
        assert!(e.contains("is blank"), "{e}");

        let e = err(bind_literals(
            &LABELS,
            &[utf8("t"), ScalarValue::Utf8(None)],
        ));
        assert!(e.contains("argument 2 (label): a label is NULL"), "{e}");

        let e = err(bind_literals(
            &LABELS,
            &[utf8("t"), ScalarValue::Int64(Some(1))],
        ));
        assert!(e.contains("must be a text literal or an ARRAY"), "{e}");

        let e = err(LABELS.bind(
            "categorize",
            &[DataType::Utf8, DataType::Utf8],
            &[None, None],
            Stage::Physical,
        ));
        assert!(
            e.contains("categorize(): argument 2 (label) must be written in the query"),
            "{e}"
        );
        // Options after the labels; options alone are no labels.
        let bound =
            bind_literals(&LABELS, &[utf8("t"), utf8("a"), utf8(r#"{"model": "x"}"#)]).unwrap();
        assert_eq!(bound.constants.labels(), ["a"]);
        let e = err(bind_literals(
            &LABELS,
            &[utf8("t"), utf8(r#"{"model": "x"}"#)],
        ));
        assert!(e.contains("no labels given"), "{e}");
    }

    #[test]
    fn schemas_are_literals_parsed_when_bound() {
        const EXTRACT: ArgSpec = ArgSpec::fixed(&[Param::text("text"), Param::schema("schema")]);
        let bound = bind_literals(&EXTRACT, &[utf8("t"), utf8("name VARCHAR, n INT")]).unwrap();
        assert_eq!(bound.row_args, vec![0]);
        let schema = bound.constants.schema().expect("a schema");
        assert_eq!(schema.fields().len(), 2);
        let e = err(bind_literals(&EXTRACT, &[utf8("t"), utf8("n MONEY")]));
        assert!(
            e.contains("f(): argument 2 (schema) field 1: the field \"n\" has the unknown type"),
            "{e}"
        );
        let e = err(bind_literals(
            &EXTRACT,
            &[utf8("t"), ScalarValue::Int64(Some(1))],
        ));
        assert!(
            e.contains("argument 2 (schema) must be a text literal"),
            "{e}"
        );
        // A column is refused even while the logical plan is built: it gives the type.
        let e = err(EXTRACT.bind(
            "f",
            &[DataType::Utf8, DataType::Utf8],
            &[None, None],
            Stage::Logical,
        ));
        assert!(
            e.contains("argument 2 (schema) must be a text literal written in the query"),
            "{e}"
        );
    }

    #[test]
    fn a_blank_instruction_literal_is_refused() {
        const FILTER: ArgSpec =
            ArgSpec::fixed(&[Param::text("text"), Param::instruction("condition")]);
        for blank in ["", "  \t"] {
            let e = err(bind_literals(&FILTER, &[utf8("t"), utf8(blank)]));
            assert!(
                e.contains("f(): argument 2 (condition) must not be empty"),
                "{e}"
            );
        }
        let bound = bind_literals(&FILTER, &[utf8("t"), utf8("is short")]).unwrap();
        assert_eq!(bound.row_args, vec![0, 1]);
        // A column is let through: its values are only known per row.
        assert!(
            FILTER
                .bind(
                    "f",
                    &[DataType::Utf8, DataType::Utf8],
                    &[None, None],
                    Stage::Physical
                )
                .is_ok()
        );
        assert_eq!(
            FILTER.coerce_types(&[DataType::Int32, DataType::Int64]),
            vec![DataType::Utf8, DataType::Utf8]
        );
    }

    #[test]
    fn a_list_parameter_stays_a_list_of_text() {
        const REDUCE: ArgSpec =
            ArgSpec::fixed(&[Param::text_list("list"), Param::text("instruction")]);
        let ints = DataType::new_list(DataType::Int64, true);
        let large = DataType::LargeList(Arc::new(Field::new("item", DataType::Utf8View, true)));
        for t in [ints, large, DataType::new_list(DataType::Utf8, false)] {
            assert_eq!(
                REDUCE.coerce_types(&[t, DataType::Int32]),
                vec![text_list_type(), DataType::Utf8]
            );
        }
        let bound = REDUCE
            .bind(
                "ai_reduce",
                &[text_list_type(), DataType::Utf8],
                &[None, None],
                Stage::Physical,
            )
            .unwrap();
        assert_eq!((bound.row_args, bound.list_arg), (vec![0, 1], Some(0)));
        // A NULL literal is a NULL list.
        assert!(
            REDUCE
                .bind(
                    "ai_reduce",
                    &[DataType::Null, DataType::Utf8],
                    &[None, None],
                    Stage::Logical
                )
                .is_ok()
        );
        // One text is not a list; nor is a list of what cannot be text.
        let map_list = DataType::new_list(
            DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Default::default()),
                    false,
                )),
                false,
            ),
            true,
        );
        for t in [DataType::Utf8, map_list] {
            assert_eq!(
                REDUCE.coerce_types(std::slice::from_ref(&t)),
                vec![t.clone()]
            );
            let e = err(REDUCE.bind(
                "ai_reduce",
                &[t, DataType::Utf8],
                &[None, None],
                Stage::Logical,
            ));
            assert!(
                e.contains("ai_reduce(): argument 1 (list) must be a list of texts"),
                "{e}"
            );
        }
        assert_eq!(
            REDUCE.example_types(),
            vec![vec![text_list_type(), DataType::Utf8]]
        );
        assert_eq!(
            REDUCE.usage("ai_reduce"),
            "ai_reduce(list, instruction [, options])"
        );
    }

    #[test]
    fn usage_and_example_types() {
        assert_eq!(
            SUMMARIZE.usage("summarize"),
            "summarize(text [, max_chars] [, options])"
        );
        assert_eq!(
            SUMMARIZE.example_types(),
            vec![vec![DataType::Utf8], vec![DataType::Utf8, DataType::Int64]]
        );
        assert_eq!(
            LABELS.example_types(),
            vec![vec![DataType::Utf8, DataType::Utf8]]
        );
    }
}
