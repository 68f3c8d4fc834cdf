//! [`AiExecCodec`]: the `PhysicalExtensionCodec` (datafusion-proto) that carries
//! [`AiExec`] and [`AiJoinExec`] from one session to another. An operator travels as
//! its description only: each call's output column, its expression (the AI function by
//! name, its arguments) and its guards, a join's conditions and projection, whether it
//! asks in waves, and the query's number. The session that decodes it must
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

use datafusion::common::{JoinType, Result, internal_datafusion_err, not_impl_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::PhysicalExprNode;
use prost::Message;

use super::ai_call::{AiCall, Guard, Truth};
use super::ai_exec::AiExec;
use super::ai_join::AiJoinExec;

/// Encodes and decodes [`AiExec`]; every other plan node is left to datafusion-proto.
#[derive(Debug, Default, Clone, Copy)]
pub struct AiExecCodec;

/// The wire form of a blossom operator.
#[derive(Clone, PartialEq, Message)]
struct BlossomNode {
    #[prost(oneof = "Node", tags = "1, 2")]
    node: Option<Node>,
}

/// Which operator.
#[derive(Clone, PartialEq, prost::Oneof)]
enum Node {
    #[prost(message, tag = "1")]
    Ai(AiExecNode),
    #[prost(message, tag = "2")]
    Join(Box<AiJoinNode>),
}

/// The wire form of an [`AiJoinExec`]: its `ai_match` call and other conditions over
/// the joined columns, its projection, the query's number.
#[derive(Clone, PartialEq, Message)]
struct AiJoinNode {
    #[prost(uint64, tag = "1")]
    query_id: u64,
    #[prost(message, optional, tag = "2")]
    call: Option<PhysicalExprNode>,
    #[prost(message, optional, tag = "3")]
    filter: Option<PhysicalExprNode>,
    #[prost(bool, tag = "4")]
    projected: bool,
    #[prost(uint32, repeated, tag = "5")]
    projection: Vec<u32>,
    #[prost(bool, tag = "6")]
    waves: bool,
}

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
        let node = BlossomNode::decode(buf).map_err(|e| {
            internal_datafusion_err!("a blossom operator could not be decoded: {e}")
        })?;
        let node = match node.node {
            Some(Node::Ai(node)) => node,
            Some(Node::Join(join)) => {
                return decode_join(&join, inputs, ctx, self, proto_converter);
            }
            None => return not_impl_err!("an encoded blossom operator names no operator"),
        };
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
        let encode = |expr| proto_converter.physical_expr_to_proto(expr, self);
        if let Some(join) = node.downcast_ref::<AiJoinExec>() {
            let projection = join.projection();
            let node = AiJoinNode {
                query_id: join.query_id(),
                call: Some(encode(join.match_call())?),
                filter: join.filter().map(encode).transpose()?,
                projected: projection.is_some(),
                projection: projection
                    .unwrap_or_default()
                    .iter()
                    .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
                    .collect(),
                waves: join.asks_in_waves(),
            };
            return encode_node(Node::Join(Box::new(node)), buf);
        }
        let Some(ai) = node.downcast_ref::<AiExec>() else {
            return not_impl_err!("{} is not a blossom operator", node.name());
        };
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
        let node = AiExecNode {
            query_id: ai.query_id(),
            calls,
            waves: ai.asks_in_waves(),
        };
        encode_node(Node::Ai(node), buf)
    }
}

fn encode_node(node: Node, buf: &mut Vec<u8>) -> Result<()> {
    BlossomNode { node: Some(node) }
        .encode(buf)
        .map_err(|e| internal_datafusion_err!("a blossom operator could not be encoded: {e}"))
}

/// An [`AiJoinExec`] from its wire form and its two inputs.
fn decode_join(
    node: &AiJoinNode,
    inputs: &[Arc<dyn ExecutionPlan>],
    ctx: &TaskContext,
    codec: &AiExecCodec,
    proto_converter: &dyn PhysicalProtoConverterExtension,
) -> Result<Arc<dyn ExecutionPlan>> {
    let [left, right] = inputs else {
        return not_impl_err!(
            "BlossomAiJoinExec takes two inputs; the encoded plan gives {}",
            inputs.len()
        );
    };
    let (joined, _) = build_join_schema(&left.schema(), &right.schema(), &JoinType::Inner);
    let decode_ctx = PhysicalPlanDecodeContext::new(ctx, codec);
    let decode = |expr: &PhysicalExprNode| {
        proto_converter.proto_to_physical_expr(expr, &joined, &decode_ctx)
    };
    let call = node.call.as_ref().ok_or_else(|| {
        internal_datafusion_err!("BlossomAiJoinExec: the encoded join lacks its ai_match call")
    })?;
    let call = decode(call)?;
    let filter = node.filter.as_ref().map(decode).transpose()?;
    let projection = node
        .projected
        .then(|| node.projection.iter().map(|&i| i as usize).collect());
    let join = AiJoinExec::try_new(
        Arc::clone(left),
        Arc::clone(right),
        &call,
        filter,
        projection,
        node.query_id,
    )?;
    Ok(Arc::new(if node.waves { join.in_waves() } else { join }))
}
