//! How AI calls are planned: the query planner that lifts AI calls out of the
//! logical plan's scans ([`LiftAiCalls`], which also stages `COPY`), and the physical
//! optimizer rule that moves every AI call out of projections and filters into
//! [`crate::execution::AiExec`] operators ([`PlanAiCalls`]), joins on `ai_match` into
//! [`crate::execution::AiJoinExec`], and marks those under a `LIMIT` to ask in waves.

mod join;
mod lift;
mod rule;
mod unbounded;
mod waves;

pub use lift::{Coordinator, LiftAiCalls, lift};
pub use rule::PlanAiCalls;
