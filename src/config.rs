//! Settings of a blossom session: the `blossom.*` options settable with SQL `SET`,
//! their defaults from the environment, and the provider presets they resolve to.
//!
//! ```sql
//! SET blossom.provider = 'ollama';
//! SET blossom.model = 'llama3.2';
//! SET blossom.max_concurrency = 8;
//! SET blossom.on_error = 'null';
//! SET blossom.cache = '/tmp/blossom-cache'; -- or 'off'
//! SET blossom.cache_ttl = 86400;             -- seconds; empty: never expires
//! SHOW ALL; -- blossom.api_key is always shown redacted
//! ```

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{DataFusionError, Result};

/// The name of every option, with its description, in the order `SHOW ALL` lists them.
const OPTIONS: &[(&str, &str)] = &[
    (
        "provider",
        "Provider preset: 'pollinations' (default), 'openai', 'ollama' or 'custom' (needs blossom.base_url)",
    ),
    (
        "base_url",
        "OpenAI-compatible base URL, e.g. 'http://localhost:11434/v1'; empty means the preset's",
    ),
    (
        "model",
        "Model name; empty means the preset's default model",
    ),
    (
        "embedding_model",
        "Model of embed(); empty means the preset's (text-embedding-3-small; nomic-embed-text for ollama)",
    ),
    (
        "api_key",
        "API key sent as a bearer token; write-only, always shown redacted",
    ),
    (
        "temperature",
        "Sampling temperature sent with each request; empty leaves it to the provider",
    ),
    (
        "max_answer_tokens",
        "Largest answer, in tokens, asked of the provider (sent as max_tokens); empty leaves it to the provider",
    ),
    (
        "request_timeout",
        "Seconds before one request is abandoned (and retried)",
    ),
    (
        "max_concurrency",
        "Requests in flight at once, shared by every AI function of the session; empty means the preset's",
    ),
    (
        "requests_per_minute",
        "Requests started per minute, shared by every AI function of the session; 0 means no limit; empty means the preset's",
    ),
    (
        "max_retries",
        "Retries of one request after a 429, a 5xx, a timeout, a connection error or an empty answer",
    ),
    (
        "retry_initial_backoff_ms",
        "First retry delay in milliseconds; doubles with each retry, with jitter",
    ),
    (
        "retry_max_backoff_ms",
        "Longest retry delay in milliseconds, unless the provider asks for longer with Retry-After",
    ),
    (
        "breaker_failures",
        "Consecutive attempts finding the provider unreachable (refused, timed out, 502/503/504) that open the circuit breaker: requests then wait while one probe at a time is sent; 0 turns it off",
    ),
    (
        "max_outage",
        "Seconds the provider may stay unreachable (the circuit breaker open) before the query fails",
    ),
    (
        "on_error",
        "What a row that still fails after its retries does: 'fail' (the query fails) or 'null' (the row gets NULL)",
    ),
    (
        "cache",
        "Directory of the persistent response cache (file responses.redb), or 'off'; empty means the user's cache directory (BLOSSOM_CACHE sets the default)",
    ),
    (
        "cache_ttl",
        "Seconds a cached answer stays valid; older ones are asked again and overwritten; empty means they never expire",
    ),
    (
        "pack_rows",
        "Rows packed into one request for functions with short answers (sentiment, categorize, ai_filter, extract, translate); 1 sends every row on its own",
    ),
    (
        "max_requests",
        "Budget of one query: provider requests (retries included) it may send before it stops with an error; empty means no budget",
    ),
    (
        "max_tokens",
        "Budget of one query: tokens (prompt plus answer, as the provider reports them) it may spend before it stops with an error; empty means no budget",
    ),
    (
        "max_prompt_chars",
        "Longest prompt, in characters, that ai_reduce sends; a longer list is split into chunks whose partial answers are combined",
    ),
];

/// `blossom.pack_rows` by default: see the README's packing benchmark.
pub const DEFAULT_PACK_ROWS: usize = 16;

/// The largest `blossom.pack_rows`.
pub const MAX_PACK_ROWS: usize = 64;
/// The default of `blossom.max_prompt_chars`: about 6000 tokens of text.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 24_000;

/// The directory under the user's cache directory that holds blossom's response cache.
const CACHE_SUBDIR: &str = "blossom-sql";

/// Where the persistent response cache lives (`blossom.cache`).
///
/// ```sql
/// SET blossom.cache = '/data/blossom-cache'; -- a directory; the file is responses.redb
/// SET blossom.cache = 'off';                 -- no persistent cache
/// SET blossom.cache = '';                    -- back to the user's cache directory
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum CacheSetting {
    /// `blossom-sql` under the user's cache directory (e.g. `~/.cache/blossom-sql`).
    #[default]
    UserDefault,
    /// No persistent cache.
    Off,
    /// This directory.
    Dir(PathBuf),
}

impl CacheSetting {
    /// The directory this setting names, or `None` when the cache is off (or there is no
    /// user cache directory, which is warned about once per process).
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            Self::Off => None,
            Self::Dir(dir) => Some(dir.clone()),
            Self::UserDefault => {
                let dir = dirs::cache_dir().map(|d| d.join(CACHE_SUBDIR));
                if dir.is_none() {
                    static WARNED: Once = Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            "no user cache directory is known on this system; the response \
                             cache is off (set blossom.cache or BLOSSOM_CACHE to a directory)"
                        );
                    });
                }
                dir
            }
        }
    }
}

impl FromStr for CacheSetting {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("default") {
            return Ok(Self::UserDefault);
        }
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let dir = PathBuf::from(s);
        if dir.exists() && !dir.is_dir() {
            return Err(format!(
                "{} is not a directory (name the directory that holds responses.redb, or 'off')",
                dir.display()
            ));
        }
        Ok(Self::Dir(dir))
    }
}

impl fmt::Display for CacheSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::UserDefault => match dirs::cache_dir() {
                Some(dir) => write!(f, "{}", dir.join(CACHE_SUBDIR).display()),
                None => f.write_str("off"),
            },
        }
    }
}

/// Which family of provider the session talks to; each brings default URL, model and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProviderPreset {
    /// Pollinations, the service behind the Blossom AI SDK (the default).
    #[default]
    Pollinations,
    /// OpenAI's API.
    OpenAi,
    /// A local Ollama server.
    Ollama,
    /// Any OpenAI-compatible server given by `blossom.base_url`.
    Custom,
}

impl ProviderPreset {
    /// The preset's URL, models and limits.
    fn preset(self) -> &'static Preset {
        PRESETS
            .iter()
            .find(|preset| preset.provider == self)
            .expect("every provider has a preset")
    }
}

impl FromStr for ProviderPreset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Ok(Self::default());
        }
        match PRESETS.iter().find(|preset| preset.name == name) {
            Some(preset) => Ok(preset.provider),
            None => {
                let names: Vec<String> = PRESETS.iter().map(|p| format!("'{}'", p.name)).collect();
                let (last, others) = names.split_last().expect("there are presets");
                Err(format!(
                    "unknown provider '{name}': expected {} or {last}",
                    others.join(", ")
                ))
            }
        }
    }
}

impl fmt::Display for ProviderPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.preset().name)
    }
}

/// What happens to a row whose call still fails after all retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// The query fails with an error naming the function, the input and the provider's message.
    #[default]
    Fail,
    /// The row's value is NULL and the query goes on.
    Null,
}

impl FromStr for OnError {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fail" | "error" => Ok(Self::Fail),
            "null" => Ok(Self::Null),
            other => Err(format!("expected 'fail' or 'null', got '{other}'")),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fail => "fail",
            Self::Null => "null",
        })
    }
}

/// An API key. It is never displayed: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ApiKey(Option<String>);

impl ApiKey {
    /// A key from its secret text; blank text means no key.
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        if secret.trim().is_empty() {
            Self(None)
        } else {
            Self(Some(secret.trim().to_string()))
        }
    }

    /// True when a key is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The secret itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() { "<redacted>" } else { "" })
    }
}

/// The `blossom.*` options of a session, a DataFusion config extension.
///
/// Registered by [`crate::BlossomSessionBuilder`]; read and changed with SQL:
///
/// ```sql
/// SET blossom.max_concurrency = 32;
/// SELECT value FROM information_schema.df_settings WHERE name = 'blossom.max_concurrency';
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BlossomOptions {
    /// `blossom.provider`
    pub provider: ProviderPreset,
    /// `blossom.base_url`; `None` means the preset's.
    pub base_url: Option<String>,
    /// `blossom.model`; `None` means the preset's.
    pub model: Option<String>,
    /// `blossom.embedding_model`; `None` means the preset's.
    pub embedding_model: Option<String>,
    /// `blossom.api_key` (write-only), or `BLOSSOM_API_KEY`: sent to whatever endpoint
    /// the session asks.
    pub api_key: ApiKey,
    /// `POLLINATIONS_API_KEY` or `OPENAI_API_KEY` from the environment, by preset: a
    /// provider's own key, sent only to that provider's hosts.
    pub provider_keys: ProviderKeys,
    /// `blossom.temperature`
    pub temperature: Option<f64>,
    /// `blossom.max_answer_tokens`
    pub max_answer_tokens: Option<u32>,
    /// `blossom.request_timeout`, in seconds.
    pub request_timeout_secs: f64,
    /// `blossom.max_concurrency`; `None` means the preset's.
    pub max_concurrency: Option<usize>,
    /// `blossom.requests_per_minute`; `None` means the preset's, `Some(0)` no limit.
    pub requests_per_minute: Option<u32>,
    /// `blossom.max_retries`
    pub max_retries: u32,
    /// `blossom.retry_initial_backoff_ms`
    pub retry_initial_backoff_ms: u64,
    /// `blossom.retry_max_backoff_ms`
    pub retry_max_backoff_ms: u64,
    /// `blossom.breaker_failures`: 0 turns the circuit breaker off.
    pub breaker_failures: u32,
    /// `blossom.max_outage`, in seconds.
    pub max_outage_secs: f64,
    /// `blossom.on_error`
    pub on_error: OnError,
    /// `blossom.cache`
    pub cache: CacheSetting,
    /// `blossom.cache_ttl`, in seconds; `None` means cached answers never expire.
    pub cache_ttl_secs: Option<f64>,
    /// `blossom.pack_rows`
    pub pack_rows: usize,
    /// `blossom.max_requests`: the request budget of one query; `None` means none.
    pub max_requests: Option<u64>,
    /// `blossom.max_tokens`: the token budget of one query; `None` means none.
    pub max_tokens: Option<u64>,
    /// `blossom.max_prompt_chars`: the longest prompt `ai_reduce` sends.
    pub max_prompt_chars: usize,
}

impl Default for BlossomOptions {
    fn default() -> Self {
        Self {
            provider: ProviderPreset::Pollinations,
            base_url: None,
            model: None,
            embedding_model: None,
            api_key: ApiKey::default(),
            provider_keys: ProviderKeys::default(),
            temperature: None,
            max_answer_tokens: None,
            request_timeout_secs: 60.0,
            max_concurrency: None,
            requests_per_minute: None,
            max_retries: 5,
            retry_initial_backoff_ms: 500,
            retry_max_backoff_ms: 30_000,
            breaker_failures: 5,
            max_outage_secs: 300.0,
            on_error: OnError::Fail,
            cache: CacheSetting::UserDefault,
            cache_ttl_secs: None,
            pack_rows: DEFAULT_PACK_ROWS,
            max_requests: None,
            max_tokens: None,
            max_prompt_chars: DEFAULT_MAX_PROMPT_CHARS,
        }
    }
}

impl BlossomOptions {
    /// Defaults overridden by the process environment: `BLOSSOM_PROVIDER`,
    /// `BLOSSOM_BASE_URL`, `BLOSSOM_MODEL`, `BLOSSOM_CACHE`, `BLOSSOM_PACK_ROWS`,
    /// `BLOSSOM_API_KEY`, then
    /// `POLLINATIONS_API_KEY` (as the Blossom AI SDK reads it) or `OPENAI_API_KEY`
    /// for the OpenAI preset.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup`.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut options = Self::default();
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        for (env, key) in [
            ("BLOSSOM_PROVIDER", "provider"),
            ("BLOSSOM_BASE_URL", "base_url"),
            ("BLOSSOM_MODEL", "model"),
            ("BLOSSOM_CACHE", "cache"),
            ("BLOSSOM_PACK_ROWS", "pack_rows"),
        ] {
            if let Some(value) = var(env) {
                options.set_option(key, &value).map_err(|e| {
                    DataFusionError::Configuration(format!(
                        "the environment variable {env}: {}",
                        configuration_message(&e)
                    ))
                })?;
            }
        }
        if let Some(key) = var("BLOSSOM_API_KEY") {
            options.api_key = ApiKey::new(key);
        }
        options.provider_keys = ProviderKeys {
            pollinations: ApiKey::new(var("POLLINATIONS_API_KEY").unwrap_or_default()),
            openai: ApiKey::new(var("OPENAI_API_KEY").unwrap_or_default()),
        };
        Ok(options)
    }

    /// Sets one option by its name without the `blossom.` prefix, as `SET` does.
    pub fn set_option(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |why: String| {
            DataFusionError::Configuration(format!(
                "invalid value '{value}' for blossom.{key}: {why}"
            ))
        };
        let trimmed = value.trim();
        match key {
            "provider" => self.provider = trimmed.parse().map_err(bad)?,
            "base_url" => self.base_url = parse_base_url(trimmed).map_err(bad)?,
            "model" => self.model = non_empty(trimmed),
            "embedding_model" => self.embedding_model = non_empty(trimmed),
            "api_key" => self.api_key = ApiKey::new(trimmed),
            "temperature" => {
                self.temperature = parse_optional(trimmed, |t: f64| {
                    (0.0..=2.0)
                        .contains(&t)
                        .then_some(t)
                        .ok_or("must be between 0 and 2")
                })
                .map_err(bad)?
            }
            "max_answer_tokens" => {
                self.max_answer_tokens = parse_optional(trimmed, |n: u32| {
                    (n > 0).then_some(n).ok_or("must be a positive integer")
                })
                .map_err(bad)?
            }
            "request_timeout" => {
                self.request_timeout_secs = parse_required(trimmed, |t: f64| {
                    (t > 0.0 && t <= 86_400.0)
                        .then_some(t)
                        .ok_or("must be a number of seconds above 0")
                })
                .map_err(bad)?
            }
            "max_concurrency" => {
                self.max_concurrency = parse_optional(trimmed, |n: usize| {
                    (1..=10_000)
                        .contains(&n)
                        .then_some(n)
                        .ok_or("must be an integer from 1 to 10000")
                })
                .map_err(bad)?
            }
            "requests_per_minute" => {
                self.requests_per_minute =
                    parse_optional(trimmed, |n: u32| Ok::<_, &str>(n)).map_err(bad)?
            }
            "max_retries" => {
                self.max_retries = parse_required(trimmed, |n: u32| {
                    (n <= 100)
                        .then_some(n)
                        .ok_or("must be an integer from 0 to 100")
                })
                .map_err(bad)?
            }
            "retry_initial_backoff_ms" => {
                self.retry_initial_backoff_ms =
                    parse_required(trimmed, |n: u64| Ok::<_, &str>(n)).map_err(bad)?
            }
            "retry_max_backoff_ms" => {
                self.retry_max_backoff_ms =
                    parse_required(trimmed, |n: u64| Ok::<_, &str>(n)).map_err(bad)?
            }
            "breaker_failures" => {
                self.breaker_failures = parse_required(trimmed, |n: u32| {
                    (n <= 10_000)
                        .then_some(n)
                        .ok_or("must be an integer from 0 (off) to 10000")
                })
                .map_err(bad)?
            }
            "max_outage" => {
                self.max_outage_secs = parse_required(trimmed, |t: f64| {
                    (t > 0.0 && t <= 86_400.0)
                        .then_some(t)
                        .ok_or("must be a number of seconds above 0")
                })
                .map_err(bad)?
            }
            "on_error" => self.on_error = trimmed.parse().map_err(bad)?,
            "cache" => self.cache = trimmed.parse().map_err(bad)?,
            "cache_ttl" => {
                self.cache_ttl_secs = parse_optional(trimmed, |t: f64| {
                    (t > 0.0 && t <= 3_153_600_000.0)
                        .then_some(t)
                        .ok_or("must be a number of seconds above 0 (empty: never expires)")
                })
                .map_err(bad)?
            }
            "pack_rows" => {
                self.pack_rows = parse_required(trimmed, |n: usize| {
                    (1..=MAX_PACK_ROWS)
                        .contains(&n)
                        .then_some(n)
                        .ok_or("must be an integer from 1 to 64")
                })
                .map_err(bad)?
            }
            "max_requests" => {
                self.max_requests = parse_optional(trimmed, |n: u64| {
                    (n > 0)
                        .then_some(n)
                        .ok_or("must be a positive integer (empty: no budget)")
                })
                .map_err(bad)?
            }
            "max_tokens" => {
                self.max_tokens = parse_optional(trimmed, |n: u64| {
                    (n > 0)
                        .then_some(n)
                        .ok_or("must be a positive integer (empty: no budget)")
                })
                .map_err(bad)?
            }
            "max_prompt_chars" => {
                self.max_prompt_chars =
                    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("default") {
                        DEFAULT_MAX_PROMPT_CHARS
                    } else {
                        parse_required(trimmed, |n: usize| {
                            (n > 0).then_some(n).ok_or("must be a positive integer")
                        })
                        .map_err(bad)?
                    }
            }
            _ => {
                let known: Vec<String> = OPTIONS
                    .iter()
                    .map(|(k, _)| format!("blossom.{k}"))
                    .collect();
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting 'blossom.{key}'; known settings: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The value of one option as `SHOW` prints it; the API key is redacted.
    fn value_of(&self, key: &str) -> Option<String> {
        fn opt<T: ToString>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(ToString::to_string)
        }
        match key {
            "provider" => Some(self.provider.to_string()),
            "base_url" => self.base_url.clone(),
            "model" => self.model.clone(),
            "embedding_model" => self.embedding_model.clone(),
            "api_key" => self.api_key.is_set().then(|| self.api_key.to_string()),
            "temperature" => opt(&self.temperature),
            "max_answer_tokens" => opt(&self.max_answer_tokens),
            "request_timeout" => Some(self.request_timeout_secs.to_string()),
            "max_concurrency" => opt(&self.max_concurrency),
            "requests_per_minute" => opt(&self.requests_per_minute),
            "max_retries" => Some(self.max_retries.to_string()),
            "retry_initial_backoff_ms" => Some(self.retry_initial_backoff_ms.to_string()),
            "retry_max_backoff_ms" => Some(self.retry_max_backoff_ms.to_string()),
            "breaker_failures" => Some(self.breaker_failures.to_string()),
            "max_outage" => Some(self.max_outage_secs.to_string()),
            "on_error" => Some(self.on_error.to_string()),
            "cache" => Some(self.cache.to_string()),
            "cache_ttl" => opt(&self.cache_ttl_secs),
            "pack_rows" => Some(self.pack_rows.to_string()),
            "max_requests" => opt(&self.max_requests),
            "max_tokens" => opt(&self.max_tokens),
            "max_prompt_chars" => Some(self.max_prompt_chars.to_string()),
            _ => None,
        }
    }

    /// What one query may spend (`blossom.max_requests`, `blossom.max_tokens`).
    pub fn budget(&self) -> Budget {
        Budget {
            max_requests: self.max_requests,
            max_tokens: self.max_tokens,
        }
    }

    /// Resolves the preset and the options into what one request needs.
    pub fn resolve(&self) -> Result<ProviderSettings> {
        let preset = self.provider.preset();
        let own_key = preset
            .own_key
            .as_ref()
            .is_some_and(|own| (own.key)(&self.provider_keys).is_set());
        // The keyless endpoint's conservative limits apply only to that endpoint, not
        // to a server named with blossom.base_url.
        let endpoint = match &preset.keyless {
            Some(keyless) if self.base_url.is_none() && !self.api_key.is_set() && !own_key => {
                keyless
            }
            _ => &preset.endpoint,
        };
        let chat_url = match (&self.base_url, endpoint.chat_url) {
            (Some(base), _) => chat_url_for(base),
            (None, Some(url)) => url.to_string(),
            (None, None) => {
                return Err(DataFusionError::Configuration(format!(
                    "blossom.provider = '{}' needs blossom.base_url (or BLOSSOM_BASE_URL)",
                    preset.name
                )));
            }
        };
        Ok(ProviderSettings {
            embeddings_url: embeddings_url_for(&chat_url),
            api_key: self.key_for(&chat_url),
            embedding_model: self
                .embedding_model
                .clone()
                .unwrap_or_else(|| preset.embedding_model.to_string()),
            chat_url,
            model: self
                .model
                .clone()
                .unwrap_or_else(|| preset.model.to_string()),
            temperature: self.temperature,
            max_answer_tokens: self.max_answer_tokens,
            request_timeout: Duration::from_secs_f64(self.request_timeout_secs),
            max_concurrency: self.max_concurrency.unwrap_or(endpoint.max_concurrency),
            requests_per_minute: self
                .requests_per_minute
                .unwrap_or(endpoint.requests_per_minute),
            max_retries: self.max_retries,
            retry_initial_backoff: Duration::from_millis(self.retry_initial_backoff_ms),
            retry_max_backoff: Duration::from_millis(
                self.retry_max_backoff_ms.max(self.retry_initial_backoff_ms),
            ),
            breaker_failures: self.breaker_failures,
            max_outage: Duration::from_secs_f64(self.max_outage_secs),
            on_error: self.on_error,
            cache_dir: self.cache.dir(),
            cache_ttl: self.cache_ttl_secs.map(Duration::from_secs_f64),
            pack_rows: self.pack_rows,
            max_prompt_chars: self.max_prompt_chars,
        })
    }
}

impl BlossomOptions {
    /// The key sent to `chat_url`: `blossom.api_key` (or `BLOSSOM_API_KEY`) anywhere; a
    /// provider's own key from the environment only to that provider's hosts, so that
    /// `POLLINATIONS_API_KEY` never reaches a custom or local endpoint.
    fn key_for(&self, chat_url: &str) -> ApiKey {
        if self.api_key.is_set() {
            return self.api_key.clone();
        }
        let host = reqwest::Url::parse(chat_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let on = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        match &self.provider.preset().own_key {
            Some(own) if on(own.domain) => (own.key)(&self.provider_keys).clone(),
            _ => ApiKey::default(),
        }
    }
}

/// The providers' own keys, read from their usual environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderKeys {
    /// `POLLINATIONS_API_KEY`, for the Pollinations preset's hosts.
    pub pollinations: ApiKey,
    /// `OPENAI_API_KEY`, for the OpenAI preset's hosts.
    pub openai: ApiKey,
}

/// The message of a settings error without DataFusion's "Invalid or Unsupported
/// Configuration: " prefix, so that wrapping it (naming the variable or flag that set
/// it) does not repeat the prefix.
pub fn configuration_message(error: &DataFusionError) -> String {
    match error {
        DataFusionError::Configuration(message) => message.clone(),
        other => other.to_string(),
    }
}

/// What a provider preset brings: its name, its endpoint with the limits it is held to,
/// its default models, and which of the providers' own keys may go to which hosts.
struct Preset {
    provider: ProviderPreset,
    /// As `blossom.provider` names it.
    name: &'static str,
    endpoint: Endpoint,
    /// Where a session goes with no key at all and no `blossom.base_url`.
    keyless: Option<Endpoint>,
    model: &'static str,
    embedding_model: &'static str,
    own_key: Option<OwnKey>,
}

/// A chat-completions URL and the limits it is held to unless set otherwise.
struct Endpoint {
    /// `None`: `blossom.base_url` must name the server.
    chat_url: Option<&'static str>,
    max_concurrency: usize,
    requests_per_minute: u32,
}

/// A provider's own key from the environment and the domain whose hosts may get it.
struct OwnKey {
    domain: &'static str,
    key: fn(&ProviderKeys) -> &ApiKey,
}

/// Every provider preset; `blossom.provider` names one.
const PRESETS: &[Preset] = &[
    Preset {
        provider: ProviderPreset::Pollinations,
        name: "pollinations",
        endpoint: Endpoint {
            chat_url: Some("https://gen.pollinations.ai/v1/chat/completions"),
            max_concurrency: 8,
            requests_per_minute: 0,
        },
        // The deprecated keyless endpoint serves about one request at a time per IP,
        // several seconds apart.
        keyless: Some(Endpoint {
            chat_url: Some("https://text.pollinations.ai/openai"),
            max_concurrency: 1,
            requests_per_minute: 12,
        }),
        model: "openai",
        embedding_model: "text-embedding-3-small",
        own_key: Some(OwnKey {
            domain: "pollinations.ai",
            key: |keys| &keys.pollinations,
        }),
    },
    Preset {
        provider: ProviderPreset::OpenAi,
        name: "openai",
        endpoint: Endpoint {
            chat_url: Some("https://api.openai.com/v1/chat/completions"),
            max_concurrency: 16,
            requests_per_minute: 0,
        },
        keyless: None,
        model: "gpt-4o-mini",
        embedding_model: "text-embedding-3-small",
        own_key: Some(OwnKey {
            domain: "openai.com",
            key: |keys| &keys.openai,
        }),
    },
    Preset {
        provider: ProviderPreset::Ollama,
        name: "ollama",
        endpoint: Endpoint {
            chat_url: Some("http://localhost:11434/v1/chat/completions"),
            max_concurrency: 4,
            requests_per_minute: 0,
        },
        keyless: None,
        model: "llama3.2",
        embedding_model: "nomic-embed-text",
        own_key: None,
    },
    Preset {
        provider: ProviderPreset::Custom,
        name: "custom",
        endpoint: Endpoint {
            chat_url: None,
            max_concurrency: 16,
            requests_per_minute: 0,
        },
        keyless: None,
        model: "default",
        embedding_model: "text-embedding-3-small",
        own_key: None,
    },
];

/// The embeddings URL next to a chat-completions URL.
fn embeddings_url_for(chat_url: &str) -> String {
    match chat_url.strip_suffix("/chat/completions") {
        Some(base) => format!("{base}/embeddings"),
        None => format!("{}/embeddings", chat_url.trim_end_matches('/')),
    }
}

/// The chat-completions URL for a base URL: `<base>/chat/completions`, unless the base
/// already names the endpoint (Pollinations' legacy `/openai` endpoint, or a full path).
fn chat_url_for(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") || base.ends_with("text.pollinations.ai/openai") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    }
}

fn parse_base_url(value: &str) -> std::result::Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put credentials in blossom.api_key, not in the URL".to_string());
    }
    Ok(Some(value.trim_end_matches('/').to_string()))
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

fn parse_required<T: FromStr>(
    value: &str,
    check: impl Fn(T) -> std::result::Result<T, &'static str>,
) -> std::result::Result<T, String> {
    let parsed = value.parse::<T>().map_err(|_| "not a number".to_string())?;
    check(parsed).map_err(str::to_string)
}

fn parse_optional<T: FromStr>(
    value: &str,
    check: impl Fn(T) -> std::result::Result<T, &'static str>,
) -> std::result::Result<Option<T>, String> {
    if value.is_empty() || value.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    parse_required(value, check).map(Some)
}

impl ExtensionOptions for BlossomOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_option(key, value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        OPTIONS
            .iter()
            .map(|(key, description)| ConfigEntry {
                key: format!("{}.{key}", Self::PREFIX),
                value: self.value_of(key),
                description,
            })
            .collect()
    }
}

impl ConfigExtension for BlossomOptions {
    const PREFIX: &'static str = "blossom";
}

/// Everything a call needs, resolved from [`BlossomOptions`] and the provider preset.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    /// The full chat-completions URL.
    pub chat_url: String,
    /// The full embeddings URL: the chat URL's `/chat/completions` replaced by
    /// `/embeddings`.
    pub embeddings_url: String,
    /// The model of `embed()`.
    pub embedding_model: String,
    /// The model asked for.
    pub model: String,
    /// The bearer token, if any.
    pub api_key: ApiKey,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// Answer length limit, if set (sent as the request's `max_tokens`).
    pub max_answer_tokens: Option<u32>,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Requests started per minute; 0 means no limit.
    pub requests_per_minute: u32,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First retry delay.
    pub retry_initial_backoff: Duration,
    /// Longest computed retry delay.
    pub retry_max_backoff: Duration,
    /// Consecutive unreachable attempts that open the circuit breaker; 0: never.
    pub breaker_failures: u32,
    /// The longest outage before a query fails.
    pub max_outage: Duration,
    /// What a failed row does.
    pub on_error: OnError,
    /// The directory of the persistent response cache; `None` when it is off.
    pub cache_dir: Option<PathBuf>,
    /// How long a cached answer stays valid; `None` means forever.
    pub cache_ttl: Option<Duration>,
    /// Rows per request for functions that pack; 1 means no packing.
    pub pack_rows: usize,
    /// The longest prompt a reducing function sends (`blossom.max_prompt_chars`).
    pub max_prompt_chars: usize,
}

/// What one query may spend at the provider (`blossom.max_requests`,
/// `blossom.max_tokens`); `None` means no limit.
///
/// ```sql
/// SET blossom.max_requests = 500;
/// SET blossom.max_tokens = 200000;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Requests, retries included.
    pub max_requests: Option<u64>,
    /// Prompt plus answer tokens, as the provider reports them.
    pub max_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_setting_is_named() {
        let err = BlossomOptions::default()
            .set_option("max_concurency", "4")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown setting 'blossom.max_concurency'"),
            "{err}"
        );
        assert!(err.contains("blossom.max_concurrency"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut o = BlossomOptions::default();
        for (key, value) in [
            ("max_concurrency", "0"),
            ("max_concurrency", "many"),
            ("on_error", "skip"),
            ("provider", "acme"),
            ("temperature", "9"),
            ("request_timeout", "-1"),
            ("base_url", "ftp://x"),
            ("base_url", "http://user:pw@host/v1"),
            ("cache_ttl", "0"),
            ("cache_ttl", "soon"),
            ("cache", "Cargo.toml"),
            ("max_prompt_chars", "0"),
            ("max_prompt_chars", "-5"),
            ("max_prompt_chars", "lots"),
        ] {
            let err = o.set_option(key, value).unwrap_err().to_string();
            assert!(err.contains(&format!("blossom.{key}")), "{err}");
        }
        assert_eq!(o, BlossomOptions::default(), "failed sets change nothing");
    }

    #[test]
    fn a_providers_key_goes_only_to_its_hosts() {
        let env = |k: &str| match k {
            "POLLINATIONS_API_KEY" => Some("sk_pollinations".to_string()),
            "OPENAI_API_KEY" => Some("sk_openai".to_string()),
            _ => None,
        };
        let key = |settings: &[(&str, &str)]| {
            let mut o = BlossomOptions::from_env_with(env).unwrap();
            for (k, v) in settings {
                o.set_option(k, v).unwrap();
            }
            o.resolve().unwrap().api_key.expose().map(str::to_string)
        };
        assert_eq!(key(&[]).as_deref(), Some("sk_pollinations"));
        assert_eq!(key(&[("provider", "openai")]).as_deref(), Some("sk_openai"));
        assert_eq!(key(&[("provider", "ollama")]), None);
        assert_eq!(
            key(&[
                ("provider", "custom"),
                ("base_url", "http://127.0.0.1:9/v1")
            ]),
            None
        );
        assert_eq!(
            key(&[("base_url", "http://pollinations.ai.evil.example/v1")]),
            None
        );
        assert_eq!(
            key(&[("base_url", "https://gen.pollinations.ai/v1")]).as_deref(),
            Some("sk_pollinations")
        );
        // A key given for the session goes wherever the session asks.
        assert_eq!(
            key(&[
                ("provider", "custom"),
                ("base_url", "http://127.0.0.1:9/v1"),
                ("api_key", "mine")
            ])
            .as_deref(),
            Some("mine")
        );
        let blossom = BlossomOptions::from_env_with(|k| {
            (k == "BLOSSOM_API_KEY").then(|| "sk_blossom".to_string())
        })
        .unwrap();
        assert!(blossom.api_key.is_set());
    }

    #[test]
    fn env_reads_pollinations_key_and_redacts_it() {
        let o = BlossomOptions::from_env_with(|k| {
            (k == "POLLINATIONS_API_KEY").then(|| "sk_secret_123".to_string())
        })
        .unwrap();
        assert!(o.provider_keys.pollinations.is_set());
        assert!(!format!("{o:?}").contains("sk_secret_123"));
        let shown: Vec<_> = o.entries().into_iter().filter_map(|e| e.value).collect();
        assert!(!shown.iter().any(|v| v.contains("sk_secret_123")));
        let s = o.resolve().unwrap();
        assert_eq!(
            s.chat_url,
            "https://gen.pollinations.ai/v1/chat/completions"
        );
        assert!(!format!("{s:?}").contains("sk_secret_123"));
    }

    #[test]
    fn pack_rows_defaults_and_reads_the_environment() {
        let default = BlossomOptions::from_env_with(|_| None).unwrap();
        assert_eq!(default.resolve().unwrap().pack_rows, DEFAULT_PACK_ROWS);
        let set = BlossomOptions::from_env_with(|k| (k == "BLOSSOM_PACK_ROWS").then(|| "1".into()));
        assert_eq!(set.unwrap().pack_rows, 1);
        let bad =
            BlossomOptions::from_env_with(|k| (k == "BLOSSOM_PACK_ROWS").then(|| "65".into()));
        let error = bad.unwrap_err();
        assert_eq!(
            configuration_message(&error),
            "the environment variable BLOSSOM_PACK_ROWS: invalid value '65' for \
             blossom.pack_rows: must be an integer from 1 to 64"
        );
        assert_eq!(
            error
                .to_string()
                .matches("Invalid or Unsupported Configuration")
                .count(),
            1,
            "the prefix once: {error}"
        );
    }

    #[test]
    fn keyless_pollinations_uses_legacy_endpoint_with_conservative_limits() {
        let s = BlossomOptions::default().resolve().unwrap();
        assert_eq!(s.chat_url, "https://text.pollinations.ai/openai");
        assert_eq!(s.max_concurrency, 1);
        assert_eq!(s.requests_per_minute, 12);
    }

    #[test]
    fn a_base_url_is_not_held_to_the_keyless_endpoint_limits() {
        let mut o = BlossomOptions::default();
        o.set_option("base_url", "http://127.0.0.1:8787/v1")
            .unwrap();
        let s = o.resolve().unwrap();
        assert_eq!(s.max_concurrency, 8);
        assert_eq!(s.requests_per_minute, 0);
    }

    #[test]
    fn base_url_gets_chat_path_and_custom_needs_it() {
        let mut o = BlossomOptions::default();
        o.set_option("provider", "custom").unwrap();
        assert!(o.resolve().unwrap_err().to_string().contains("base_url"));
        o.set_option("base_url", "http://127.0.0.1:8787/v1/")
            .unwrap();
        assert_eq!(
            o.resolve().unwrap().chat_url,
            "http://127.0.0.1:8787/v1/chat/completions"
        );
        o.set_option("max_concurrency", "").unwrap();
        assert_eq!(o.resolve().unwrap().max_concurrency, 16);
    }

    #[test]
    fn max_prompt_chars_parses_shows_and_resolves() {
        let mut o = BlossomOptions::default();
        assert_eq!(
            o.resolve().unwrap().max_prompt_chars,
            DEFAULT_MAX_PROMPT_CHARS
        );
        o.set_option("max_prompt_chars", " 500 ").unwrap();
        assert_eq!(o.resolve().unwrap().max_prompt_chars, 500);
        assert_eq!(o.value_of("max_prompt_chars").as_deref(), Some("500"));
        o.set_option("max_prompt_chars", "").unwrap();
        assert_eq!(o.max_prompt_chars, DEFAULT_MAX_PROMPT_CHARS);
        let err = o
            .set_option("max_prompt_chars", "0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "invalid value '0' for blossom.max_prompt_chars: must be a positive integer"
            ),
            "{err}"
        );
    }

    #[test]
    fn cache_settings_parse_and_resolve() {
        let mut o = BlossomOptions::default();
        assert_eq!(o.cache, CacheSetting::UserDefault);
        if let Some(dir) = dirs::cache_dir() {
            assert_eq!(
                o.resolve().unwrap().cache_dir,
                Some(dir.join("blossom-sql"))
            );
        }
        o.set_option("cache", "OFF").unwrap();
        assert_eq!(o.resolve().unwrap().cache_dir, None);
        assert_eq!(o.value_of("cache").as_deref(), Some("off"));
        o.set_option("cache", "/tmp/some where").unwrap();
        assert_eq!(
            o.resolve().unwrap().cache_dir,
            Some(PathBuf::from("/tmp/some where"))
        );
        assert_eq!(o.resolve().unwrap().cache_ttl, None);
        o.set_option("cache_ttl", "1.5").unwrap();
        assert_eq!(
            o.resolve().unwrap().cache_ttl,
            Some(Duration::from_millis(1500))
        );
        o.set_option("cache_ttl", "").unwrap();
        assert_eq!(o.cache_ttl_secs, None);
        let env = BlossomOptions::from_env_with(|k| (k == "BLOSSOM_CACHE").then(|| "off".into()))
            .unwrap();
        assert_eq!(env.cache, CacheSetting::Off);
    }

    #[test]
    fn every_provider_has_one_preset_named_as_it_parses() {
        use ProviderPreset::*;
        for provider in [Pollinations, OpenAi, Ollama, Custom] {
            // A new provider fails to compile here until it is listed above.
            match provider {
                Pollinations | OpenAi | Ollama | Custom => {}
            }
            let presets = PRESETS.iter().filter(|p| p.provider == provider).count();
            assert_eq!(presets, 1, "{provider:?}");
            assert_eq!(provider.to_string().parse::<ProviderPreset>(), Ok(provider));
        }
        assert_eq!(" OpenAI ".parse::<ProviderPreset>(), Ok(OpenAi));
        assert_eq!("".parse::<ProviderPreset>(), Ok(Pollinations));
        assert_eq!(
            "Acme".parse::<ProviderPreset>().unwrap_err(),
            "unknown provider 'acme': expected 'pollinations', 'openai', 'ollama' or 'custom'"
        );
    }

    #[test]
    fn presets_resolve_to_their_urls_models_and_limits() {
        let resolved = |provider: &str| {
            let mut o = BlossomOptions::default();
            o.set_option("provider", provider).unwrap();
            o.set_option("api_key", "k").unwrap();
            let s = o.resolve().unwrap();
            (
                s.chat_url,
                s.model,
                s.embedding_model,
                s.max_concurrency,
                s.requests_per_minute,
            )
        };
        assert_eq!(
            resolved("pollinations"),
            (
                "https://gen.pollinations.ai/v1/chat/completions".to_string(),
                "openai".to_string(),
                "text-embedding-3-small".to_string(),
                8,
                0
            )
        );
        assert_eq!(
            resolved("openai"),
            (
                "https://api.openai.com/v1/chat/completions".to_string(),
                "gpt-4o-mini".to_string(),
                "text-embedding-3-small".to_string(),
                16,
                0
            )
        );
        assert_eq!(
            resolved("ollama"),
            (
                "http://localhost:11434/v1/chat/completions".to_string(),
                "llama3.2".to_string(),
                "nomic-embed-text".to_string(),
                4,
                0
            )
        );
        let mut custom = BlossomOptions::default();
        custom.set_option("provider", "custom").unwrap();
        assert_eq!(
            configuration_message(&custom.resolve().unwrap_err()),
            "blossom.provider = 'custom' needs blossom.base_url (or BLOSSOM_BASE_URL)"
        );
        custom.set_option("base_url", "http://h/v1").unwrap();
        let s = custom.resolve().unwrap();
        assert_eq!(
            (s.model.as_str(), s.embedding_model.as_str()),
            ("default", "text-embedding-3-small")
        );
    }
}
