//! How AI calls run inside a query: [`AiExec`], the operator that evaluates a batch's
//! calls concurrently through the request pipeline, [`AiJoinExec`], the semantic join
//! that asks about pairs of texts in blocks, what it takes from its session at
//! execute time ([`AiServices`], [`DryRun`]), the codec that carries it to another
//! session ([`AiExecCodec`]), and `COPY`'s atomic write ([`StagedCopyExec`]).

mod ai_call;
mod ai_exec;
mod ai_join;
mod codec;
mod reduce;
mod services;
mod staged_copy;
mod waves;
mod work_report;

pub(crate) use ai_call::{AiCall, Guard, Truth};
pub use ai_exec::AiExec;
pub use ai_join::AiJoinExec;
pub use codec::AiExecCodec;
pub use services::{AiServices, DryRun};
pub(crate) use staged_copy::{StagedCopyExec, remove_with_staging_files, stage};
