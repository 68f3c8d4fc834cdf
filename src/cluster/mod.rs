//! One query over several processes, on [datafusion-distributed]: `blossom worker`
//! serves plan fragments over gRPC, and a session built with workers plans every query
//! as a coordinator that splits the stages holding AI calls over all of them.
//!
//! ```text
//! BLOSSOM_CLUSTER_TOKEN=... blossom worker --listen 127.0.0.1:50051
//! BLOSSOM_CLUSTER_TOKEN=... blossom --workers 127.0.0.1:50051,127.0.0.1:50052 -c "..."
//! ```
//!
//! The pieces, each in its own file:
//! - [`workers`]: the list of workers (`--workers`, `blossom.workers`) as the
//!   resolver the distributed planner asks.
//! - [`channels`]: the coordinator's connections to workers, each presenting the
//!   cluster's token, and the check that every worker answers before a query starts.
//! - [`auth`]: the worker's tower layer that refuses a peer without the token.
//! - [`failures`]: an error of a cluster query names the workers that went down.
//! - [`planner`]: the coordinator's planner: the checks above, then the distributed
//!   planner over blossom's own.
//! - [`stages`]: a stage holding an AI operator gets one task per worker.
//! - [`settings`]: which `blossom.*` settings reach the workers, and how.
//! - [`worker`]: the gRPC server of `blossom worker`.
//!
//! [datafusion-distributed]: https://github.com/datafusion-contrib/datafusion-distributed

pub mod auth;
pub mod channels;
pub mod failures;
pub mod planner;
pub mod settings;
pub mod stages;
pub mod worker;
pub mod workers;

pub use auth::TokenCheck;
pub use channels::{TokenChannels, check_workers};
pub use planner::ClusterPlanner;
pub use settings::{options_from_headers, settings_that_cannot_travel};
pub use stages::AiStages;
pub use worker::{WorkerServer, serve_worker};
pub use workers::{Workers, parse_workers};
