//! `blossom-sim`: runs the OpenAI-compatible chat-completions simulator from the command
//! line, so clients and benchmarks can talk to a local fake model instead of the internet.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use blossom_sql::sim::{FaultConfig, SimConfig, Simulator};
use clap::Parser;

/// OpenAI-compatible chat-completions simulator (simulated answers, not a real model).
#[derive(Debug, Parser)]
#[command(name = "blossom-sim", version, about)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Host or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Fixed latency per answered request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra random latency, uniformly 0..=JITTER milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Answer requests asking for a JSON schema with 400, like a provider without
    /// structured outputs.
    #[arg(long)]
    no_json_schema: bool,
    /// Extra latency per answer token, in milliseconds (fractions allowed).
    #[arg(long, default_value_t = 0.0)]
    latency_per_token_ms: f64,
    /// Rate of packed answers that misbehave in each way (drop, repeat or invent an id,
    /// an invalid answer, reversed order).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pack_misbehaviour: f64,
    /// Rate of packed requests answered ignoring the packing protocol (1: never keeps it).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pack_ignore: f64,
    /// Repeat every request header (the Authorization one too) in every answer.
    #[arg(long)]
    echo_headers: bool,
    /// Answer 429 to chat requests beyond this many at once.
    #[arg(long)]
    max_concurrent: Option<usize>,
    /// Own rate limit in requests per minute (429 beyond it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rpm: Option<u32>,
    /// Burst size of the rate limit.
    #[arg(long, default_value_t = 1)]
    rate_burst: u32,
    /// Rate (0..=1) of injected 500 answers.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    server_error_rate: f64,
    /// Rate (0..=1) of injected 429 answers.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate_limited_rate: f64,
    /// Rate (0..=1) of requests that hang for --hang-for-ms before answering.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    hang_rate: f64,
    /// Rate (0..=1) of connections closed without a response.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    drop_rate: f64,
    /// Rate (0..=1) of 200 answers with invalid JSON bodies.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    malformed_rate: f64,
    /// Rate (0..=1) of 200 answers with empty content.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    empty_rate: f64,
    /// Rate (0..=1) of injected 402 (insufficient credit) answers.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    payment_required_rate: f64,
    /// Retry-After advertised by injected 429s, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    retry_after_ms: u64,
    /// How long hanging requests wait, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    hang_for_ms: u64,
    /// Inject at most this many faults in total.
    #[arg(long)]
    max_faults: Option<u64>,
    /// Seed of the fault dice and the jitter.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Model name reported by the simulator.
    #[arg(long, default_value = "blossom-sim")]
    model: String,
    /// Require `Authorization: Bearer <KEY>` on API requests.
    #[arg(long, env = "BLOSSOM_SIM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Parses a fault rate and checks it lies in 0..=1.
fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number; rates are between 0 and 1"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("rate must be between 0 and 1, got {value}"))
    }
}

impl Args {
    fn config(&self) -> SimConfig {
        SimConfig {
            latency: Duration::from_millis(self.latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            latency_per_token: Duration::from_secs_f64(
                self.latency_per_token_ms.max(0.0) / 1_000.0,
            ),
            max_concurrent: self.max_concurrent,
            requests_per_minute: self.rpm,
            rate_burst: self.rate_burst,
            faults: FaultConfig {
                server_error: self.server_error_rate,
                rate_limited: self.rate_limited_rate,
                hang: self.hang_rate,
                drop_connection: self.drop_rate,
                malformed_json: self.malformed_rate,
                empty_content: self.empty_rate,
                payment_required: self.payment_required_rate,
                retry_after: Duration::from_millis(self.retry_after_ms),
                hang_for: Duration::from_millis(self.hang_for_ms),
                max_faults: self.max_faults,
                pack_ignore: self.pack_ignore,
                ..FaultConfig::default().with_pack_misbehaviour(self.pack_misbehaviour)
            },
            seed: self.seed,
            model: self.model.clone(),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            json_schema: !self.no_json_schema,
            echo_headers: self.echo_headers,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let addr = match tokio::net::lookup_host((args.host.as_str(), args.port)).await {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => addr,
            None => return fail(&format!("cannot resolve host `{}`", args.host)),
        },
        Err(e) => return fail(&format!("cannot resolve host `{}`: {e}", args.host)),
    };
    match run(addr, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(addr: SocketAddr, args: &Args) -> Result<(), String> {
    let sim = Simulator::start_on(addr, args.config())
        .await
        .map_err(|e| format!("cannot start on {addr}: {e}"))?;
    println!(
        "blossom-sim listening on http://{}:{}/v1 (simulated answers, not a real model)",
        args.host,
        sim.addr().port()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    sim.shutdown();
    Ok(())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("blossom-sim: {message}");
    ExitCode::FAILURE
}
