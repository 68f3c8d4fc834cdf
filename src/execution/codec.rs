//! [`AiExecCodec`]: the `PhysicalExtensionCodec` (datafusion-proto) that carries
//! [`AiExec`] from one session to another. The operator travels as its description
//! only: each call's output column, its expression (the AI function by name, its
//! arguments) and its guards, and the query's number. The session that decodes it must
//! have the AI functions registered (any [`crate::BlossomSessionBuilder`] session), and
//! runs it with its own services: dispatcher, cache, logs, and its own provider key
//! (keys never travel in a plan).
//!
//! ```no_run
//! # async fn f(plan: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
//! #            worker: datafusion::prelude::SessionContext) -> datafusion::common::Result<()> {
//! use blossom_sql::execution::AiExecCodec;
//! use datafusion_proto::bytes::{
//!     physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
//! };
//! let bytes = physical_plan_to_bytes_with_extension_codec(plan, &AiExecCodec)?;
//! let decoded =
//!     physical_plan_from_bytes_with_extension_codec(&bytes, &worker.task_ctx(), &AiExecCodec)?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use datafusion::common::{Result, internal_datafusion_err, not_impl_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::PhysicalExprNode;
use prost::Message;

use super::ai_call::{AiCall, Guard, Truth};
use super::ai_exec::AiExec;

/// Encodes and decodes [`AiExec`]; every other plan node is left to datafusion-proto.
#[derive(Debug, Default, Clone, Copy)]
pub struct AiExecCodec;

/// The wire form of an [`AiExec`].
#[derive(Clone, PartialEq, Message)]
struct AiExecNode {
    #[prost(uint64, tag = "1")]
    query_id: u64,
    #[prost(message, repeated, tag = "2")]
    calls: Vec<AiCallNode>,
    #[prost(bool, tag = "3")]
    waves: bool,
}

/// The wire form of one call: its output column, the call expression, its guards.
#[derive(Clone, PartialEq, Message)]
struct AiCallNode {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    expr: Option<PhysicalExprNode>,
    #[prost(message, repeated, tag = "3")]
    guards: Vec<GuardNode>,
}

/// The wire form of a guard: a condition and the truth it must have.
#[derive(Clone, PartialEq, Message)]
struct GuardNode {
    #[prost(message, optional, tag = "1")]
    expr: Option<PhysicalExprNode>,
    /// 0: TRUE, 1: NOT TRUE, 2: NOT FALSE.
    #[prost(uint32, tag = "2")]
    truth: u32,
}

fn truth_code(truth: Truth) -> u32 {
    match truth {
        Truth::True => 0,
        Truth::NotTrue => 1,
        Truth::NotFalse => 2,
    }
}

fn truth_of(code: u32) -> Result<Truth> {
    match code {
        0 => Ok(Truth::True),
        1 => Ok(Truth::NotTrue),
        2 => Ok(Truth::NotFalse),
        other => Err(internal_datafusion_err!(
            "BlossomAiExec: unknown guard kind {other} in an encoded plan"
        )),
    }
}

impl PhysicalExtensionCodec for AiExecCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = AiExecNode::decode(buf)
            .map_err(|e| internal_datafusion_err!("BlossomAiExec could not be decoded: {e}"))?;
        let [input] = inputs else {
            return not_impl_err!(
                "BlossomAiExec takes one input; the encoded plan gives {}",
                inputs.len()
            );
        };
        let schema = input.schema();
        let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
        let decode = |expr: &Option<PhysicalExprNode>| {
            let expr = expr.as_ref().ok_or_else(|| {
                internal_datafusion_err!("BlossomAiExec: an encoded call lacks its expression")
            })?;
            proto_converter.proto_to_physical_expr(expr, &schema, &decode_ctx)
        };
        let mut calls = Vec::with_capacity(node.calls.len());
        for call in &node.calls {
            let guards = call
                .guards
                .iter()
                .map(|guard| {
                    Ok(Guard {
                        expr: decode(&guard.expr)?,
                        truth: truth_of(guard.truth)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let expr = decode(&call.expr)?;
            let call =
                AiCall::try_new(call.name.clone(), &expr, guards, &schema)?.ok_or_else(|| {
                    internal_datafusion_err!(
                        "BlossomAiExec: {expr} is not a call to an AI function of this session"
                    )
                })?;
            calls.push(call);
        }
        let exec = AiExec::try_new(Arc::clone(input), calls, node.query_id)?;
        Ok(Arc::new(if node.waves { exec.in_waves() } else { exec }))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(ai) = node.downcast_ref::<AiExec>() else {
            return not_impl_err!("{} is not a blossom operator", node.name());
        };
        let encode = |expr| proto_converter.physical_expr_to_proto(expr, self);
        let calls = ai
            .calls()
            .iter()
            .map(|call| {
                Ok(AiCallNode {
                    name: call.name.clone(),
                    expr: Some(encode(&call.expr)?),
                    guards: call
                        .guards
                        .iter()
                        .map(|guard| {
                            Ok(GuardNode {
                                expr: Some(encode(&guard.expr)?),
                                truth: truth_code(guard.truth),
                            })
                        })
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        AiExecNode {
            query_id: ai.query_id(),
            calls,
            waves: ai.asks_in_waves(),
        }
        .encode(buf)
        .map_err(|e| internal_datafusion_err!("BlossomAiExec could not be encoded: {e}"))
    }
}
