//! Command-line arguments of `blossom`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Run SQL with LLM functions over CSV, JSON and Parquet files.
///
/// Provider settings come from the environment (BLOSSOM_PROVIDER, BLOSSOM_BASE_URL,
/// BLOSSOM_MODEL, BLOSSOM_API_KEY, POLLINATIONS_API_KEY), then from the flags below,
/// then from `SET blossom.<option> = ...` statements.
#[derive(Debug, Clone, Parser)]
#[command(name = "blossom", version, about, long_about = None)]
pub struct Args {
    /// SQL to run (repeatable; statements separated by ';' run in order)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// File of SQL statements to run (repeatable; after the -c commands)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// How results are printed
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Provider preset: pollinations, openai, ollama or custom
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,

    /// OpenAI-compatible base URL, e.g. http://localhost:11434/v1
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Model name
    #[arg(long)]
    pub model: Option<String>,

    /// Requests in flight at once
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<String>,

    /// Requests started per minute (0: no limit)
    #[arg(long, value_name = "N")]
    pub requests_per_minute: Option<String>,

    /// What a row that still fails after its retries does: fail or null
    #[arg(long, value_name = "MODE")]
    pub on_error: Option<String>,

    /// Answer from the bundled simulator, started in-process on 127.0.0.1, instead of a
    /// real provider; its answers are simulated, not a language model's
    #[arg(long)]
    pub simulate: bool,

    /// With --simulate: the simulator's latency per request, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 50, requires = "simulate")]
    pub sim_latency_ms: u64,

    /// Print no notices on stderr
    #[arg(short, long)]
    pub quiet: bool,
}

impl Args {
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
