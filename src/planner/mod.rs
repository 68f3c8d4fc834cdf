//! How AI calls run inside a query: a physical optimizer rule that moves every AI call
//! out of projections and filters into [`AiExec`], the operator that evaluates a batch's
//! calls concurrently through the session's dispatcher.

mod ai_call;
mod ai_exec;
mod claim;
mod embedding;
mod lift;
mod metrics;
mod packing;
mod reduce;
mod rule;
mod staged_copy;

pub use ai_exec::AiExec;
pub use lift::{LiftAiCalls, lift};
pub use rule::PlanAiCalls;
pub(crate) use staged_copy::remove_with_staging_files;
