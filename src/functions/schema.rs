//! The schema literal of `ai_extract()` (`'name VARCHAR, price DOUBLE, tags VARCHAR[]'`):
//! parsed once at planning time into a [`StructSchema`], which gives the call's STRUCT
//! type, the JSON Schema the request asks for, and the casting of each JSON answer
//! field into its typed value.

use std::fmt;

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::ScalarValue;
use datafusion::common::scalar::ScalarStructBuilder;
use serde_json::{Map, Value, json};

use crate::provider::truncate_chars;

/// The type names a field may have, as listed in error messages.
const SUPPORTED: &str = "VARCHAR (TEXT, STRING), BIGINT, INT (INTEGER), DOUBLE, FLOAT (REAL), \
BOOLEAN, DATE, and lists of those written T[] (e.g. VARCHAR[])";

/// The type of a field, or of a list's elements.
///
/// ```sql
/// SELECT extract(text, 'name VARCHAR, qty INT, price DOUBLE, ok BOOLEAN, day DATE') FROM t;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// `VARCHAR`, `TEXT`, `STRING`: `Utf8`.
    Text,
    /// `INT`, `INTEGER`: `Int32`.
    Int32,
    /// `BIGINT`: `Int64`.
    Int64,
    /// `FLOAT`, `REAL`: `Float32`.
    Float32,
    /// `DOUBLE`: `Float64`.
    Float64,
    /// `BOOLEAN`, `BOOL`.
    Boolean,
    /// `DATE`: `Date32`, answered as `YYYY-MM-DD`.
    Date,
}

impl ScalarKind {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "VARCHAR" | "TEXT" | "STRING" => Self::Text,
            "INT" | "INTEGER" | "INT4" => Self::Int32,
            "BIGINT" | "INT8" => Self::Int64,
            "FLOAT" | "REAL" | "FLOAT4" => Self::Float32,
            "DOUBLE" | "FLOAT8" => Self::Float64,
            "BOOLEAN" | "BOOL" => Self::Boolean,
            "DATE" => Self::Date,
            _ => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Text => DataType::Utf8,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Date => DataType::Date32,
        }
    }

    /// How the prompt describes it.
    fn described(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Int32 | Self::Int64 => "whole number",
            Self::Float32 | Self::Float64 => "number",
            Self::Boolean => "true or false",
            Self::Date => "date as YYYY-MM-DD",
        }
    }

    /// The JSON Schema of a value (not null).
    fn json_schema(self) -> Value {
        match self {
            Self::Text => json!({"type": "string"}),
            Self::Int32 | Self::Int64 => json!({"type": "integer"}),
            Self::Float32 | Self::Float64 => json!({"type": "number"}),
            Self::Boolean => json!({"type": "boolean"}),
            Self::Date => json!({"type": "string", "format": "date"}),
        }
    }

    /// The value of `json` (not null) as this type, or why it is not one.
    fn cast(self, json: &Value) -> Result<ScalarValue, String> {
        match self {
            Self::Text => match json {
                Value::String(s) => Ok(ScalarValue::Utf8(Some(s.clone()))),
                Value::Number(n) => Ok(ScalarValue::Utf8(Some(n.to_string()))),
                Value::Bool(b) => Ok(ScalarValue::Utf8(Some(b.to_string()))),
                _ => Err("is not a text".to_string()),
            },
            Self::Int64 => whole_number(json).map(|v| ScalarValue::Int64(Some(v))),
            Self::Int32 => {
                let v = whole_number(json)?;
                i32::try_from(v)
                    .map(|v| ScalarValue::Int32(Some(v)))
                    .map_err(|_| "is out of range for INT".to_string())
            }
            Self::Float64 => number(json).map(|v| ScalarValue::Float64(Some(v))),
            Self::Float32 => {
                let v = number(json)?;
                #[allow(clippy::cast_possible_truncation)]
                let narrow = v as f32;
                if narrow.is_finite() {
                    Ok(ScalarValue::Float32(Some(narrow)))
                } else {
                    Err("is out of range for FLOAT".to_string())
                }
            }
            Self::Boolean => match json {
                Value::Bool(b) => Ok(ScalarValue::Boolean(Some(*b))),
                Value::String(s) if s.trim().eq_ignore_ascii_case("true") => {
                    Ok(ScalarValue::Boolean(Some(true)))
                }
                Value::String(s) if s.trim().eq_ignore_ascii_case("false") => {
                    Ok(ScalarValue::Boolean(Some(false)))
                }
                _ => Err("is not true or false".to_string()),
            },
            Self::Date => match json {
                Value::String(s) => iso_date(s.trim())
                    .map(|days| ScalarValue::Date32(Some(days)))
                    .ok_or_else(|| "is not a date written YYYY-MM-DD".to_string()),
                _ => Err("is not a date written YYYY-MM-DD".to_string()),
            },
        }
    }
}

impl fmt::Display for ScalarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "VARCHAR",
            Self::Int32 => "INT",
            Self::Int64 => "BIGINT",
            Self::Float32 => "FLOAT",
            Self::Float64 => "DOUBLE",
            Self::Boolean => "BOOLEAN",
            Self::Date => "DATE",
        })
    }
}

/// A field's type: one value, or a list of values (`T[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// One value.
    Scalar(ScalarKind),
    /// A list of values, answered as a JSON array.
    List(ScalarKind),
}

impl FieldType {
    /// The Arrow type of the field.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Scalar(kind) => kind.data_type(),
            Self::List(kind) => DataType::new_list(kind.data_type(), true),
        }
    }

    fn described(self) -> String {
        match self {
            Self::Scalar(kind) => kind.described().to_string(),
            Self::List(kind) => format!("list of {}", kind.described()),
        }
    }

    fn json_schema(self) -> Value {
        let mut schema = match self {
            Self::Scalar(kind) => kind.json_schema(),
            Self::List(kind) => json!({"type": "array", "items": kind.json_schema()}),
        };
        // Strict structured outputs need every key listed as required: a value that is
        // not in the text is answered as null.
        if let Some(t) = schema.get("type").cloned() {
            schema["type"] = json!([t, "null"]);
        }
        schema
    }

    /// The value of `json` as this type: NULL for JSON null, or why it cannot be one.
    pub fn cast(self, json: &Value) -> Result<ScalarValue, String> {
        if json.is_null() {
            return ScalarValue::try_from(&self.data_type()).map_err(|e| e.to_string());
        }
        match self {
            Self::Scalar(kind) => kind.cast(json),
            Self::List(kind) => {
                let Value::Array(items) = json else {
                    return Err("is not a list (a JSON array)".to_string());
                };
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        if item.is_null() {
                            ScalarValue::try_from(&kind.data_type()).map_err(|e| e.to_string())
                        } else {
                            kind.cast(item).map_err(|why| {
                                format!(
                                    "has as element {} the value {}, which {why}",
                                    i + 1,
                                    shown(item)
                                )
                            })
                        }
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &values,
                    &kind.data_type(),
                )))
            }
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scalar(kind) => write!(f, "{kind}"),
            Self::List(kind) => write!(f, "{kind}[]"),
        }
    }
}

/// One field of the schema: its name as written and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaField {
    /// The name, case kept as written (without the quotes of a quoted name).
    pub name: String,
    /// The type.
    pub field_type: FieldType,
}

/// The fields `ai_extract()` returns, parsed from its schema literal.
///
/// ```sql
/// SELECT extract(text, 'name VARCHAR, "Unit Price" DOUBLE, tags VARCHAR[]') FROM t;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructSchema {
    fields: Vec<SchemaField>,
}

/// The result of casting one JSON answer: the STRUCT value (uncastable fields NULL) and
/// one message per field that could not be cast.
pub type CastStruct = (ScalarValue, Vec<String>);

impl StructSchema {
    /// Parses `name TYPE, name TYPE, ...`; the error says what is wrong, to follow
    /// "argument 2 (schema) " in a planning error.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(
                "is empty; give at least one field, e.g. 'name VARCHAR, price DOUBLE'".to_string(),
            );
        }
        let mut fields: Vec<SchemaField> = Vec::new();
        for (i, part) in split_fields(text).into_iter().enumerate() {
            let field =
                parse_field(part.trim()).map_err(|why| format!("field {}: {why}", i + 1))?;
            if let Some(first) = fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&field.name))
            {
                return Err(format!(
                    "names the field {:?} twice (as {:?} and {:?}; names are compared \
                     ignoring case); give each field once",
                    field.name, first.name, field.name
                ));
            }
            fields.push(field);
        }
        Ok(Self { fields })
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[SchemaField] {
        &self.fields
    }

    /// The STRUCT type of the result: every field nullable.
    pub fn data_type(&self) -> DataType {
        DataType::Struct(self.arrow_fields())
    }

    fn arrow_fields(&self) -> Fields {
        self.fields
            .iter()
            .map(|f| Field::new(&f.name, f.field_type.data_type(), true))
            .collect()
    }

    /// One line per field for the prompt: `- "name": text`.
    pub fn prompt_lines(&self) -> String {
        self.fields
            .iter()
            .map(|f| {
                format!(
                    "- {}: {}",
                    Value::String(f.name.clone()),
                    f.field_type.described()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The JSON Schema of the answer object: every key required, null allowed, no other
    /// keys (what OpenAI's strict structured outputs require).
    pub fn json_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.field_type.json_schema()))
            .collect();
        let required: Vec<Value> = self
            .fields
            .iter()
            .map(|f| Value::String(f.name.clone()))
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Casts a JSON object into the STRUCT: a key that is missing (or null) gives NULL
    /// for its field; a value that cannot be cast gives NULL and a message naming the
    /// field and the value. Keys are matched exactly, else ignoring case.
    pub fn cast_object(&self, object: &Map<String, Value>) -> Result<CastStruct, String> {
        let mut builder = ScalarStructBuilder::new();
        let mut problems = Vec::new();
        for (field, arrow_field) in self.fields.iter().zip(self.arrow_fields().iter()) {
            let json = object.get(&field.name).or_else(|| {
                let mut matches = object
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&field.name));
                match (matches.next(), matches.next()) {
                    (Some((_, v)), None) => Some(v),
                    _ => None,
                }
            });
            let value = match json.map(|json| field.field_type.cast(json)) {
                None => ScalarValue::try_from(arrow_field.data_type()),
                Some(Ok(value)) => Ok(value),
                Some(Err(why)) => {
                    problems.push(format!(
                        "field {:?} ({}): the value {} {why}",
                        field.name,
                        field.field_type,
                        json.map(shown).unwrap_or_default()
                    ));
                    ScalarValue::try_from(arrow_field.data_type())
                }
            }
            .map_err(|e| e.to_string())?;
            builder = builder.with_scalar(arrow_field, value);
        }
        let value = builder.build().map_err(|e| e.to_string())?;
        Ok((value, problems))
    }
}

/// Splits at top-level commas (not inside a quoted name).
fn split_fields(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// One `name TYPE` entry.
fn parse_field(entry: &str) -> Result<SchemaField, String> {
    if entry.is_empty() {
        return Err("is empty (a stray comma?); write name TYPE".to_string());
    }
    let (name, rest) = if let Some(after) = entry.strip_prefix('"') {
        // A quoted name; "" inside stands for one quote.
        let mut name = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().is_some_and(|(_, next)| *next == '"') {
                    chars.next();
                    name.push('"');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        let Some(end) = end else {
            return Err(format!("the quoted name in {entry:?} has no closing quote"));
        };
        if name.trim().is_empty() {
            return Err("a quoted name is empty".to_string());
        }
        (name, &after[end..])
    } else {
        let end = entry
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(entry.len());
        let name = &entry[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "{entry:?} does not start with a field name (letters, digits and _, not \
                 starting with a digit; or a \"quoted name\")"
            ));
        }
        (name.to_string(), &entry[end..])
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!(
            "{entry:?}: expected a space and a type after the name {name:?}"
        ));
    }
    let type_text = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    if type_text.is_empty() {
        return Err(format!(
            "the field {name:?} has no type; write {name} TYPE, with TYPE one of {SUPPORTED}"
        ));
    }
    let field_type = parse_type(&type_text).ok_or_else(|| {
        format!("the field {name:?} has the unknown type {type_text}; the types are {SUPPORTED}")
    })?;
    Ok(SchemaField { name, field_type })
}

fn parse_type(text: &str) -> Option<FieldType> {
    let kind = |name: &str| {
        if name.eq_ignore_ascii_case("DOUBLE PRECISION") {
            Some(ScalarKind::Float64)
        } else {
            ScalarKind::from_name(name)
        }
    };
    match text.strip_suffix("[]") {
        Some(element) => kind(element.trim_end()).map(FieldType::List),
        None => kind(text).map(FieldType::Scalar),
    }
}

/// The JSON object in a model's answer: the whole answer, a ```json fenced block, or the
/// text from the first `{` to the last `}`. `Err` says why there is none.
pub fn answer_object(answer: &str) -> Result<Map<String, Value>, String> {
    let trimmed = answer.trim();
    let candidates = [Some(trimmed), fenced(trimmed), braced(trimmed)];
    for candidate in candidates.into_iter().flatten() {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(candidate) {
            return Ok(object);
        }
    }
    Err(format!(
        "the answer {:?} is not a JSON object",
        truncate_chars(trimmed, 80)
    ))
}

/// The inside of the first ``` fence, without its language tag.
fn fenced(text: &str) -> Option<&str> {
    let start = text.find("```")? + 3;
    let rest = text.get(start..)?;
    let body_start = rest.find('\n').map_or(0, |n| n + 1);
    let body = rest.get(body_start..)?;
    let end = body.find("```")?;
    body.get(..end).map(str::trim)
}

/// From the first `{` to the last `}`.
fn braced(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (start < end).then(|| text.get(start..=end)).flatten()
}

/// A whole number: a JSON integer, an integral float, or a string holding one.
fn whole_number(json: &Value) -> Result<i64, String> {
    let not = || "is not a whole number".to_string();
    let from_float = |f: f64| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        if f.is_finite() && f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            Ok(f as i64)
        } else {
            Err(not())
        }
    };
    match json {
        Value::Number(n) => match n.as_i64() {
            Some(v) => Ok(v),
            None => n.as_f64().map_or_else(|| Err(not()), from_float),
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(v) => Ok(v),
                Err(_) => s.parse::<f64>().map_err(|_| not()).and_then(from_float),
            }
        }
        _ => Err(not()),
    }
}

/// A finite number: a JSON number or a string holding one.
fn number(json: &Value) -> Result<f64, String> {
    let value = match json {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    value
        .filter(|v| v.is_finite())
        .ok_or_else(|| "is not a number".to_string())
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD` date.
fn iso_date(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// A JSON value as shown in an error message.
fn shown(json: &Value) -> String {
    truncate_chars(&json.to_string(), 40)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Array;

    use super::*;

    fn schema(text: &str) -> StructSchema {
        StructSchema::parse(text).expect(text)
    }

    fn err(text: &str) -> String {
        StructSchema::parse(text).expect_err(text)
    }

    #[test]
    fn parses_fields_types_and_names() {
        let s = schema(
            " name VARCHAR, qty int, price DOUBLE,\n tags VARCHAR[] , ok BOOLEAN, day date, \
             \"Unit Price\" real, big BIGINT, xs DOUBLE PRECISION, ys INT [], \
             zs double precision[]",
        );
        let got: Vec<(String, String)> = s
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.field_type.to_string()))
            .collect();
        let want = [
            ("name", "VARCHAR"),
            ("qty", "INT"),
            ("price", "DOUBLE"),
            ("tags", "VARCHAR[]"),
            ("ok", "BOOLEAN"),
            ("day", "DATE"),
            ("Unit Price", "FLOAT"),
            ("big", "BIGINT"),
            ("xs", "DOUBLE"),
            ("ys", "INT[]"),
            ("zs", "DOUBLE[]"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        let DataType::Struct(fields) = s.data_type() else {
            panic!("not a struct")
        };
        assert_eq!(
            fields[3].data_type(),
            &DataType::new_list(DataType::Utf8, true)
        );
        assert_eq!(fields[5].data_type(), &DataType::Date32);
        assert!(fields.iter().all(|f| f.is_nullable()));
        assert_eq!(
            schema("\"a\"\"b\" TEXT, CamelCase STRING").fields()[0].name,
            "a\"b"
        );
        assert_eq!(
            schema("a TEXT, CamelCase STRING").fields()[1].name,
            "CamelCase"
        );
    }

    #[test]
    fn refuses_bad_schemas() {
        assert!(err("").contains("is empty"));
        assert!(err("   ").contains("is empty"));
        let e = err("name VARCHAR, price MONEY");
        assert!(
            e.contains("field 2: the field \"price\" has the unknown type MONEY"),
            "{e}"
        );
        assert!(e.contains("VARCHAR (TEXT, STRING)"), "{e}");
        let e = err("name VARCHAR, Name TEXT");
        assert!(e.contains("names the field \"Name\" twice"), "{e}");
        let e = err("name VARCHAR,");
        assert!(e.contains("field 2: is empty"), "{e}");
        let e = err("name");
        assert!(e.contains("the field \"name\" has no type"), "{e}");
        let e = err("1st VARCHAR");
        assert!(e.contains("does not start with a field name"), "{e}");
        let e = err("na-me VARCHAR");
        assert!(e.contains("expected a space and a type"), "{e}");
        let e = err("\"open VARCHAR");
        assert!(e.contains("no closing quote"), "{e}");
        let e = err("xs VARCHAR[][]");
        assert!(e.contains("unknown type VARCHAR[][]"), "{e}");
        let e = err("m MAP");
        assert!(e.contains("unknown type MAP"), "{e}");
    }

    #[test]
    fn json_schema_is_strict() {
        let s = schema("name VARCHAR, tags VARCHAR[], day DATE");
        let js = s.json_schema();
        assert_eq!(js["required"], json!(["name", "tags", "day"]));
        assert_eq!(js["additionalProperties"], json!(false));
        assert_eq!(js["properties"]["name"]["type"], json!(["string", "null"]));
        assert_eq!(js["properties"]["tags"]["items"]["type"], json!("string"));
        assert_eq!(js["properties"]["day"]["format"], json!("date"));
        assert!(s.prompt_lines().contains("- \"tags\": list of text"));
    }

    fn cast(t: &str, json: Value) -> Result<ScalarValue, String> {
        parse_type(t).expect(t).cast(&json)
    }

    #[test]
    fn casts_scalars() {
        assert_eq!(
            cast("DOUBLE", json!(12.5)),
            Ok(ScalarValue::Float64(Some(12.5)))
        );
        assert_eq!(
            cast("DOUBLE", json!("12.5")),
            Ok(ScalarValue::Float64(Some(12.5)))
        );
        assert_eq!(
            cast("DOUBLE", json!(3)),
            Ok(ScalarValue::Float64(Some(3.0)))
        );
        assert!(cast("DOUBLE", json!("twelve")).is_err());
        assert!(cast("DOUBLE", json!("NaN")).is_err());
        assert!(cast("DOUBLE", json!(true)).is_err());
        assert_eq!(cast("BIGINT", json!(7)), Ok(ScalarValue::Int64(Some(7))));
        assert_eq!(cast("BIGINT", json!("7")), Ok(ScalarValue::Int64(Some(7))));
        assert_eq!(cast("BIGINT", json!(7.0)), Ok(ScalarValue::Int64(Some(7))));
        assert_eq!(
            cast("BIGINT", json!(" 8.0 ")),
            Ok(ScalarValue::Int64(Some(8)))
        );
        assert!(cast("BIGINT", json!(7.5)).is_err());
        assert!(cast("BIGINT", json!("7.5")).is_err());
        assert_eq!(cast("INT", json!(-3)), Ok(ScalarValue::Int32(Some(-3))));
        assert!(
            cast("INT", json!(5_000_000_000_i64))
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            cast("REAL", json!(1.5)),
            Ok(ScalarValue::Float32(Some(1.5)))
        );
        assert_eq!(
            cast("BOOLEAN", json!(true)),
            Ok(ScalarValue::Boolean(Some(true)))
        );
        assert_eq!(
            cast("BOOLEAN", json!("False")),
            Ok(ScalarValue::Boolean(Some(false)))
        );
        assert!(cast("BOOLEAN", json!("yes")).is_err());
        assert!(cast("BOOLEAN", json!(1)).is_err());
        assert_eq!(
            cast("VARCHAR", json!("x")),
            Ok(ScalarValue::Utf8(Some("x".into())))
        );
        assert_eq!(
            cast("VARCHAR", json!(12)),
            Ok(ScalarValue::Utf8(Some("12".into())))
        );
        assert!(cast("VARCHAR", json!({"a": 1})).is_err());
        assert_eq!(cast("VARCHAR", Value::Null), Ok(ScalarValue::Utf8(None)));
    }

    #[test]
    fn casts_dates() {
        assert_eq!(iso_date("1970-01-01"), Some(0));
        assert_eq!(iso_date("2024-03-01"), Some(19_783));
        assert_eq!(iso_date("2000-02-29"), Some(11_016));
        assert_eq!(iso_date("1969-12-31"), Some(-1));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-00",
            "+024-01-01",
        ] {
            assert_eq!(iso_date(bad), None, "{bad}");
        }
        assert_eq!(
            cast("DATE", json!("2024-03-01")),
            Ok(ScalarValue::Date32(Some(19_783)))
        );
        assert!(cast("DATE", json!("March 1")).is_err());
    }

    #[test]
    fn casts_lists() {
        let list = cast("DOUBLE[]", json!([1, "2.5", null])).unwrap();
        let want = ScalarValue::List(ScalarValue::new_list_nullable(
            &[
                ScalarValue::Float64(Some(1.0)),
                ScalarValue::Float64(Some(2.5)),
                ScalarValue::Float64(None),
            ],
            &DataType::Float64,
        ));
        assert_eq!(list, want);
        let e = cast("INT[]", json!([1, "x"])).unwrap_err();
        assert!(
            e.contains("element 2 the value \"x\", which is not a whole number"),
            "{e}"
        );
        assert!(
            cast("VARCHAR[]", json!("a, b"))
                .unwrap_err()
                .contains("not a list")
        );
        assert!(cast("VARCHAR[]", Value::Null).unwrap().is_null());
    }

    #[test]
    fn finds_the_object_in_an_answer() {
        assert!(answer_object("{\"a\": 1}").is_ok());
        assert!(answer_object("```json\n{\"a\": 1}\n```").is_ok());
        assert!(answer_object("```\n{\"a\": 1}\n```").is_ok());
        let o = answer_object("Here it is: {\"a\": {\"b\": 2}} hope it helps").unwrap();
        assert_eq!(o["a"]["b"], json!(2));
        assert!(
            answer_object("[1, 2]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(answer_object("no json here").is_err());
        assert!(answer_object("} {").is_err());
        assert!(answer_object("").is_err());
    }

    #[test]
    fn cast_object_reports_bad_fields_and_keeps_the_rest() {
        let s = schema("name VARCHAR, price DOUBLE, qty INT, tags VARCHAR[]");
        let object = answer_object(
            r#"{"Name": "Widget", "price": "cheap", "tags": ["a", "b"], "extra": 1}"#,
        )
        .unwrap();
        let (value, problems) = s.cast_object(&object).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("field \"price\" (DOUBLE): the value \"cheap\" is not a number"),
            "{problems:?}"
        );
        let ScalarValue::Struct(array) = value else {
            panic!("not a struct")
        };
        assert_eq!(array.num_columns(), 4);
        let name = ScalarValue::try_from_array(array.column(0), 0).unwrap();
        assert_eq!(name, ScalarValue::Utf8(Some("Widget".into())));
        assert!(array.column(1).is_null(0));
        assert!(array.column(2).is_null(0));
        assert!(!array.column(3).is_null(0));
    }
}
