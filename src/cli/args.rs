//! Command-line arguments of `blossom`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// Run SQL with LLM functions over CSV, JSON and Parquet files.
///
/// Without -c or -f, starts an interactive shell (or reads SQL from a pipe). Provider
/// settings come from the environment (BLOSSOM_PROVIDER, BLOSSOM_BASE_URL,
/// BLOSSOM_MODEL, BLOSSOM_API_KEY, POLLINATIONS_API_KEY), then from the flags below,
/// then from `SET blossom.<option> = ...` statements.
///
/// Exit codes: 0 success, 1 query error, 2 usage error, 3 more failed rows than
/// --max-failed-rows, 130 Ctrl-C, 143 SIGTERM.
#[derive(Debug, Clone, Parser)]
#[command(name = "blossom", version, about, long_about)]
pub struct Args {
    /// A subcommand (otherwise SQL from -c, -f, a pipe, or the interactive shell)
    #[command(subcommand)]
    pub command: Option<Command>,

    /// SQL to run (repeatable; statements separated by ';' run in order)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// File of SQL statements to run (repeatable; after the -c commands)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// How results are printed
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub format: OutputFormat,

    /// Rows shown by the table format: a number, or 'inf' for all
    #[arg(long, value_name = "N", default_value = "40", global = true)]
    pub maxrows: MaxRows,

    /// Print no progress, summaries or notices on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Write a JSON report of the run (status, statements, timings, AI metrics, errors)
    #[arg(long, value_name = "FILE", global = true)]
    pub report: Option<PathBuf>,

    /// Fail with exit code 3 when more rows than this fail (with blossom.on_error = 'null')
    #[arg(long, value_name = "N", global = true)]
    pub max_failed_rows: Option<u64>,

    /// Show the status line of a query over a streaming source even when stderr is not
    /// a terminal (one line a second)
    #[arg(long, global = true)]
    pub progress: bool,

    /// Serve the run's figures as Prometheus text on GET /metrics at this address
    /// while blossom runs, e.g. 127.0.0.1:9464 (port 0: any free port, printed on stderr)
    #[arg(long, value_name = "ADDR", global = true)]
    pub metrics_addr: Option<String>,

    /// Run as the coordinator of these `blossom worker` processes (host:port, separated
    /// by commas): the stages of a query that hold AI calls run on them. Needs
    /// BLOSSOM_CLUSTER_TOKEN, the token the workers were started with
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        env = "BLOSSOM_WORKERS",
        global = true
    )]
    pub workers: Option<String>,
    #[command(flatten)]
    pub provider: ProviderArgs,
}

/// Where requests go.
#[derive(Debug, Clone, ClapArgs)]
pub struct ProviderArgs {
    /// Provider preset: pollinations, openai, ollama or custom
    #[arg(long, value_name = "NAME", global = true)]
    pub provider: Option<String>,

    /// OpenAI-compatible base URL, e.g. http://localhost:11434/v1
    #[arg(long, value_name = "URL", global = true)]
    pub base_url: Option<String>,

    /// Model name
    #[arg(long, global = true)]
    pub model: Option<String>,

    /// Requests in flight at once
    #[arg(long, value_name = "N", global = true)]
    pub max_concurrency: Option<String>,

    /// Requests started per minute (0: no limit)
    #[arg(long, value_name = "N", global = true)]
    pub requests_per_minute: Option<String>,

    /// What a row that still fails after its retries does: fail or null
    #[arg(long, value_name = "MODE", global = true)]
    pub on_error: Option<String>,

    /// Answer from the bundled simulator, started in-process on 127.0.0.1, instead of a
    /// real provider; its answers are simulated, not a language model's
    #[arg(long, global = true)]
    pub simulate: bool,

    /// With --simulate: the simulator's latency per request, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 50, global = true)]
    pub sim_latency_ms: u64,
}

impl ProviderArgs {
    /// The `blossom.*` options the flags set, in the order they apply.
    pub fn options(&self) -> Vec<(&'static str, &str)> {
        [
            ("provider", &self.provider),
            ("base_url", &self.base_url),
            ("model", &self.model),
            ("max_concurrency", &self.max_concurrency),
            ("requests_per_minute", &self.requests_per_minute),
            ("on_error", &self.on_error),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Convert a file to another (Parquet, CSV or JSON), adding AI columns on the way
    Convert(ConvertArgs),
    /// Serve as a worker of a cluster: run the parts of queries a coordinator
    /// (`blossom --workers ...`) sends, with the provider key of this process's
    /// environment. Needs BLOSSOM_CLUSTER_TOKEN
    Worker(WorkerArgs),
}

/// `blossom worker --listen 127.0.0.1:50051`
#[derive(Debug, Clone, ClapArgs)]
pub struct WorkerArgs {
    /// The address to serve on (port 0: any free port, printed on stderr). Another
    /// address than 127.0.0.1 exposes the worker to the network: use it only on a
    /// private network, with a strong token
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    pub listen: String,
}

/// `blossom convert IN OUT --add "sentiment(text) AS sentiment" [--where "..."]`
#[derive(Debug, Clone, ClapArgs)]
pub struct ConvertArgs {
    /// The input file (or directory of files)
    pub input: PathBuf,

    /// The output file; written to a temporary file and renamed when complete
    pub output: PathBuf,

    /// A column to add, as a SQL expression with an alias (repeatable)
    #[arg(long = "add", value_name = "EXPR")]
    pub add: Vec<String>,

    /// Keep only the rows for which this SQL condition holds
    #[arg(long = "where", value_name = "CONDITION")]
    pub filter: Option<String>,

    /// The input's format, when its extension does not say
    #[arg(long, value_enum)]
    pub input_format: Option<FileFormat>,

    /// The output's format, when its extension does not say
    #[arg(long, value_enum)]
    pub output_format: Option<FileFormat>,
}

/// A file format `convert` reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// Apache Parquet
    Parquet,
    /// CSV with a header line
    Csv,
    /// Newline-delimited JSON
    Json,
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table
    Table,
    /// CSV with a header line
    Csv,
    /// One JSON array of objects
    Json,
    /// One JSON object per line
    Ndjson,
}

/// How many rows the table format shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRows {
    /// All of them.
    Unlimited,
    /// At most this many.
    Limited(usize),
}

impl FromStr for MaxRows {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("none") {
            return Ok(Self::Unlimited);
        }
        s.parse::<usize>()
            .map(Self::Limited)
            .map_err(|_| format!("'{s}' is not a number of rows or 'inf'"))
    }
}

/// How statement results are shown.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    /// The output format.
    pub format: OutputFormat,
    /// Rows the table format shows.
    pub maxrows: MaxRows,
    /// No progress, summaries or notices on stderr.
    pub quiet: bool,
    /// The status line of a streaming statement shows even when stderr is no terminal.
    pub progress: bool,
}

impl Args {
    /// The print options the flags ask for.
    pub fn print_options(&self) -> PrintOptions {
        PrintOptions {
            format: self.format,
            maxrows: self.maxrows,
            quiet: self.quiet,
            progress: self.progress,
        }
    }
}
