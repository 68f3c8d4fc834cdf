//! `ai_extract(text, schema)`: typed fields pulled out of a text, as a STRUCT whose fields
//! the schema literal names (`'name VARCHAR, price DOUBLE, tags VARCHAR[]'`); the model
//! is asked for a JSON object, each field is cast to its type.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Documentation;

use super::schema::answer_object;
use super::{AiFunction, ArgSpec, Constants, DOC_SECTION, Param, arg, with_options_argument};
use crate::provider::{AnswerFormat, ChatMessage};

/// `ai_extract(text, schema)`: returns a STRUCT with one field per entry of the schema
/// literal, filled from the text by the model.
///
/// The schema is a text literal `name TYPE, ...` parsed once at planning time; a bad one
/// (unknown type, a field named twice, empty, bad syntax) fails the query before any
/// request. Types: `VARCHAR`/`TEXT`/`STRING`, `BIGINT`, `INT`/`INTEGER`, `DOUBLE`,
/// `FLOAT`/`REAL`, `BOOLEAN`, `DATE` and lists `T[]` of those. Names keep their case;
/// `"quoted names"` may hold any character.
///
/// Named `ai_` because SQL's `EXTRACT` has the plain name. The spelling
/// `extract(text, 'schema')` is kept where it cannot be a date part (see
/// [`super::ExtractPlanner`]): the text must then be a column name or a text literal and
/// no options follow; `ai_extract(...)` takes any expression and options.
///
/// The request asks for JSON twice over: its system prompt lists the keys and their
/// types, and it asks for an answer following the fields' strict JSON Schema
/// ([`AnswerFormat::JsonSchema`], sent to OpenAI-compatible providers as the
/// structured-output `response_format`
/// `{"type": "json_schema", "json_schema": {"name": "extract", "strict": true, ...}}`)
/// so providers that support it answer with a matching object. A provider that refuses
/// JSON schemas (a 400 naming `response_format` or `json_schema`) is asked again in JSON
/// object mode (`{"type": "json_object"}`), and so are the session's later requests to
/// it. Packed requests carry no `response_format`: their answer is the packing array.
///
/// The answer may wrap the object in a ```` ```json ```` fence or in text. A missing
/// key or a JSON null gives NULL for its field. A value that cannot be cast (a number
/// that is no number, `7.5` for an `INT`, a date not written `YYYY-MM-DD`) gives NULL
/// for that field and makes the row an error of class `invalid_field` naming the field
/// and value: with `blossom.on_error = 'null'` the row keeps the struct with its other
/// fields, with `'fail'` the query fails. An answer with no JSON object is an error of
/// class `invalid_answer` and a NULL struct.
///
/// ```sql
/// SELECT id, e.product, e.rating
/// FROM (SELECT id, ai_extract(text, 'product VARCHAR, rating INT, tags VARCHAR[]') AS e
///       FROM 'data/reviews.csv');
/// SELECT ai_extract(text, 'product VARCHAR, rating INT')['rating'] FROM 'data/reviews.csv';
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Extract;

/// The name of the schema parameter.
const SCHEMA: &str = "schema";

const SPEC: ArgSpec = ArgSpec::fixed(&[Param::text("text"), Param::schema(SCHEMA)]);

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    with_options_argument(
        Documentation::builder(
            DOC_SECTION,
            "Extracts typed fields from the text and returns them as a STRUCT whose fields the schema literal names. The model is asked for a JSON object (a JSON schema response_format and the prompt); each value is cast to its field's type. A missing value gives NULL for that field; a value that cannot be cast gives NULL and is an error for that row (class invalid_field), an answer without a JSON object is an error too (class invalid_answer). NULL or empty text gives NULL without a request.",
            "ai_extract(text, schema)",
        )
        .with_sql_example(
            "```sql\n> SELECT e.name, e.price FROM (SELECT ai_extract('The Widget costs 12.50 dollars', 'name VARCHAR, price DOUBLE') AS e);\n+--------+-------+\n| name   | price |\n+--------+-------+\n| Widget | 12.5  |\n+--------+-------+\n```",
        )
        .with_argument("text", "The text to extract the fields from.")
        .with_argument(
            SCHEMA,
            "The fields, a text literal 'name TYPE, ...': TYPE is VARCHAR (TEXT, STRING), BIGINT, INT (INTEGER), DOUBLE, FLOAT (REAL), BOOLEAN, DATE or a list T[] of those; names keep their case, and \"quoted names\" may hold any character. Fields are accessed as e.name or e['name'].",
        ),
    )
    .build()
});

impl AiFunction for Extract {
    fn name(&self) -> &'static str {
        "ai_extract"
    }

    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn documentation(&self) -> &Documentation {
        &DOC
    }

    /// Without a schema (information_schema's view of the function): an empty STRUCT.
    fn return_type(&self) -> DataType {
        DataType::Struct(Fields::empty())
    }

    fn return_type_for(&self, constants: &Constants) -> Result<DataType, String> {
        constants
            .schema()
            .map(|schema| schema.data_type())
            .ok_or_else(|| {
                "argument 2 (schema) must be a text literal written in the query, such as \
                 'name VARCHAR, price DOUBLE'"
                    .to_string()
            })
    }

    fn response_format(&self, constants: &Constants) -> Option<AnswerFormat> {
        let schema = constants.schema()?;
        Some(AnswerFormat::JsonSchema {
            name: "extract".to_string(),
            schema: schema.json_schema(),
            strict: true,
        })
    }

    fn messages(&self, args: &[&str], constants: &Constants) -> Vec<ChatMessage> {
        let fields = constants
            .schema()
            .map(|schema| schema.prompt_lines())
            .unwrap_or_default();
        let instruction = format!(
            "You extract fields from texts. Answer with one JSON object that has exactly \
             these keys, and nothing else:\n{fields}\nUse null for a value the text does not \
             give. Write numbers as JSON numbers, true or false as JSON booleans, dates as \
             \"YYYY-MM-DD\" and lists as JSON arrays."
        );
        vec![
            ChatMessage::system(instruction),
            ChatMessage::user(arg(args, 0)),
        ]
    }

    fn packable(&self) -> bool {
        true
    }

    fn parse(&self, answer: &str, constants: &Constants) -> Result<ScalarValue, String> {
        let (value, problems) = self.parse_lenient(answer, constants)?;
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(problems.join("; "))
        }
    }

    fn parse_lenient(
        &self,
        answer: &str,
        constants: &Constants,
    ) -> Result<(ScalarValue, Vec<String>), String> {
        let schema = constants
            .schema()
            .ok_or_else(|| "the call has no schema".to_string())?;
        let object = answer_object(answer)?;
        schema.cast_object(&object)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::functions::StructSchema;
    use crate::provider::ChatRequest;

    fn constants() -> Constants {
        Constants::with_schema(
            StructSchema::parse("name VARCHAR, price DOUBLE, tags VARCHAR[]").expect("schema"),
        )
    }

    #[test]
    fn the_type_and_the_request_follow_the_schema() {
        let constants = constants();
        let DataType::Struct(fields) = Extract.return_type_for(&constants).unwrap() else {
            panic!("not a struct")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["name", "price", "tags"]);
        assert!(
            Extract
                .return_type_for(&Constants::default())
                .unwrap_err()
                .contains("argument 2 (schema)")
        );
        let Some(AnswerFormat::JsonSchema {
            name,
            schema,
            strict,
        }) = Extract.response_format(&constants)
        else {
            panic!("no JSON schema")
        };
        assert_eq!((name.as_str(), strict), ("extract", true));
        assert_eq!(schema["required"], json!(["name", "price", "tags"]));
        let messages = Extract.messages(&["a text"], &constants);
        assert!(messages[0].content.contains("- \"price\": number"));
        assert_eq!(messages[1], ChatMessage::user("a text"));
    }

    #[test]
    fn parses_leniently_and_strictly() {
        let constants = constants();
        let (value, problems) = Extract
            .parse_lenient(
                "```json\n{\"name\": \"Widget\", \"price\": \"n/a\"}\n```",
                &constants,
            )
            .unwrap();
        assert!(matches!(value, ScalarValue::Struct(_)));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"price\""), "{problems:?}");
        let strict = Extract
            .parse("{\"name\": \"Widget\", \"price\": \"n/a\"}", &constants)
            .unwrap_err();
        assert!(strict.contains("is not a number"), "{strict}");
        assert!(
            Extract
                .parse("{\"name\": \"Widget\", \"price\": 3}", &constants)
                .is_ok()
        );
        let e = Extract.parse("I found nothing.", &constants).unwrap_err();
        assert!(e.contains("is not a JSON object"), "{e}");
    }

    /// The request `ai_extract` sends, as the query memo and the persistent cache key
    /// it: byte for byte what it was when the format was a raw JSON value, so caches
    /// written then still answer.
    #[test]
    fn the_request_json_is_the_cache_key_of_before() {
        let constants = Constants::with_schema(
            StructSchema::parse("product VARCHAR, rating INT").expect("schema"),
        );
        let request = ChatRequest {
            model: "openai".to_string(),
            messages: Extract.messages(&["Great lamp, 4 stars"], &constants),
            temperature: None,
            max_tokens: None,
            response_format: Extract.response_format(&constants),
        };
        let key = serde_json::to_string(&request).expect("serializes");
        assert_eq!(
            key,
            concat!(
                r#"{"model":"openai","messages":[{"role":"system","content":"You extract fields from texts. Answer with one JSON object that has exactly these keys, and nothing else:\n- \"product\": text\n- \"rating\": whole number\nUse null for a value the text does not give. Write numbers as JSON numbers, true or false as JSON booleans, dates as \"YYYY-MM-DD\" and lists as JSON arrays."},{"role":"user","content":"Great lamp, 4 stars"}],"#,
                r#""response_format":{"json_schema":{"name":"extract","schema":{"additionalProperties":false,"properties":{"product":{"type":["string","null"]},"rating":{"type":["integer","null"]}},"required":["product","rating"],"type":"object"},"strict":true},"type":"json_schema"}}"#,
            )
        );
    }
}
