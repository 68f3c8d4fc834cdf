//! Integration tests: blossom sessions and the `blossom` binary against the bundled
//! simulator over real TCP on 127.0.0.1. One test binary, one module per concern.

mod budget;
mod cache;
mod cache_redis;
mod cli;
mod cluster;
mod cluster_limits;
mod codec;
mod common;
mod convert;
mod copy;
mod cost;
mod dispatch;
mod errors;
mod estimate;
mod join;
mod limit;
mod packing;
mod pipeline;
mod redis_server;
mod repl;
mod score;
mod secrets;
mod sink;
mod stop;
mod stream_cli;
mod streams;
mod structured;
