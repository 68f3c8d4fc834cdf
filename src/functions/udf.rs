//! [`AiUdf`]: an [`AiFunction`] as a DataFusion scalar UDF. It plans like any function;
//! blossom's physical optimizer rule moves its evaluation into the AI operator.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err, plan_datafusion_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::{AiFunction, Stage};

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
            // The user-defined form takes every call to `coerce_types` and
            // `return_field_from_args`, which check it against the function's
            // `ArgSpec`; the exact forms let information_schema and SHOW FUNCTIONS list
            // the parameters.
            signature: Signature::one_of(
                std::iter::once(TypeSignature::UserDefined)
                    .chain(
                        function
                            .spec()
                            .example_types()
                            .into_iter()
                            .map(TypeSignature::Exact),
                    )
                    .collect(),
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

    /// Checks the call (argument count and types, literal arguments seen so far, the
    /// options) while the plan is built, so a bad call fails before any request. The
    /// type may depend on the literal arguments (`ai_extract()`'s schema).
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let bound = self.function.spec().bind(
            self.function.name(),
            &types,
            args.scalar_arguments,
            Stage::Logical,
        )?;
        let return_type = self
            .function
            .return_type_for(&bound.constants)
            .map_err(|why| plan_datafusion_err!("{}(): {why}", self.function.name()))?;
        Ok(Arc::new(Field::new(
            self.function.name(),
            return_type,
            true,
        )))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(self.function.spec().coerce_types(arg_types))
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
