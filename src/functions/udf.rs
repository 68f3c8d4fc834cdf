//! [`AiUdf`]: an [`AiFunction`] as a DataFusion scalar UDF. It plans like any function;
//! blossom's physical optimizer rule moves its evaluation into the AI operator.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::AiFunction;
use super::args::coerce_to_text;

/// A scalar UDF backed by a language model.
#[derive(Debug)]
pub struct AiUdf {
    function: Arc<dyn AiFunction>,
    signature: Signature,
}

impl AiUdf {
    /// Wraps `function` as a UDF. It is volatile: never constant-folded or merged.
    pub fn new(function: Arc<dyn AiFunction>) -> Self {
        Self {
            // The user-defined form casts arguments to text; the exact form lets
            // information_schema and SHOW FUNCTIONS list the parameters.
            signature: Signature::one_of(
                vec![
                    TypeSignature::UserDefined,
                    TypeSignature::Exact(vec![DataType::Utf8; function.arg_names().len()]),
                ],
                Volatility::Volatile,
            ),
            function,
        }
    }

    /// The function behind the UDF.
    pub fn function(&self) -> &Arc<dyn AiFunction> {
        &self.function
    }
}

impl PartialEq for AiUdf {
    fn eq(&self, other: &Self) -> bool {
        self.function.name() == other.function.name()
    }
}

impl Eq for AiUdf {}

impl Hash for AiUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.function.name().hash(state);
    }
}

impl ScalarUDFImpl for AiUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.function.return_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_to_text(self.function.name(), self.function.arg_names(), arg_types)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "{}() cannot run in this part of the query (for example inside VALUES): \
             compute it in a SELECT list and use the resulting column",
            self.function.name()
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.function.documentation())
    }
}
