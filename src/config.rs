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

/// `blossom.pack_rows` by default: see the README's packing benchmark.
pub const DEFAULT_PACK_ROWS: usize = 32;

/// The largest `blossom.pack_rows`.
pub const MAX_PACK_ROWS: usize = 64;

/// `blossom.join_block` by default: see the README's semantic join benchmark.
pub const DEFAULT_JOIN_BLOCK: usize = 16;

/// The largest `blossom.join_block`.
pub const MAX_JOIN_BLOCK: usize = 64;

/// `blossom.pack_wait_ms` by default: see the README's streaming benchmark.
pub const DEFAULT_PACK_WAIT_MS: u64 = 10;

/// `blossom.pack_tokens` by default: see the README's packing benchmark.
pub const DEFAULT_PACK_TOKENS: usize = 1_000;

/// The default of `blossom.max_prompt_chars`: about 6000 tokens of text.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 24_000;

/// The directory under the user's cache directory that holds blossom's response cache.
const CACHE_SUBDIR: &str = "blossom-sql";

/// Where the persistent response cache lives (`blossom.cache`).
///
/// ```sql
/// SET blossom.cache = '/data/blossom-cache';        -- a directory; the file is responses.redb
/// SET blossom.cache = 'redis://127.0.0.1:6379/0';   -- a Redis shared by processes and machines
/// SET blossom.cache = 'redis://:secret@cache:6379'; -- shown as redis://:<redacted>@cache:6379
/// SET blossom.cache = 'off';                        -- no persistent cache
/// SET blossom.cache = '';                           -- back to the user's cache directory
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
    /// This Redis server.
    Redis(RedisUrl),
}

/// Where the response cache a request uses is, once [`CacheSetting`] is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheLocation {
    /// A directory holding the embedded cache file.
    Dir(PathBuf),
    /// A Redis server.
    Redis(RedisUrl),
}

impl CacheSetting {
    /// Where this setting puts the cache, or `None` when the cache is off (or there is
    /// no user cache directory, which is warned about once per process).
    pub fn location(&self) -> Option<CacheLocation> {
        match self {
            Self::Off => None,
            Self::Dir(dir) => Some(CacheLocation::Dir(dir.clone())),
            Self::Redis(url) => Some(CacheLocation::Redis(url.clone())),
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
                dir.map(CacheLocation::Dir)
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
        if let Some((scheme, _)) = s.split_once("://") {
            if scheme.eq_ignore_ascii_case("redis") || scheme.eq_ignore_ascii_case("rediss") {
                return RedisUrl::parse(s).map(Self::Redis);
            }
            return Err(format!(
                "the scheme {scheme}:// is not a cache: name a directory, a redis:// or \
                 rediss:// URL, or 'off'"
            ));
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
            Self::Redis(url) => url.fmt(f),
            Self::UserDefault => match dirs::cache_dir() {
                Some(dir) => write!(f, "{}", dir.join(CACHE_SUBDIR).display()),
                None => f.write_str("off"),
            },
        }
    }
}

/// The URL of a Redis server: `redis://[user][:password@]host[:port][/db]`, or
/// `rediss://` for TLS. Its password is a secret: `Display` and `Debug` show
/// `redis://:<redacted>@host:port/db`, and only the dispatcher's connection reads it.
///
/// ```
/// use blossom_sql::config::RedisUrl;
/// let url = RedisUrl::parse("redis://:s3cret@127.0.0.1:6379/2").unwrap();
/// assert_eq!(url.to_string(), "redis://:<redacted>@127.0.0.1:6379/2");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert!(RedisUrl::parse("redis://127.0.0.1:6379/not-a-db").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisUrl {
    url: String,
    shown: String,
    password: Option<String>,
}

impl RedisUrl {
    /// Checks `url`: a `redis://` or `rediss://` URL with a host, and a database number
    /// as its path if it has one. The error never holds the password.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("not a Redis URL ({e}): expected redis://host:port/db"))?;
        let scheme = parsed.scheme().to_ascii_lowercase();
        if scheme != "redis" && scheme != "rediss" {
            return Err("the scheme must be redis:// or rediss://".to_string());
        }
        let host = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.to_string(),
            _ => return Err("a Redis URL needs a host: redis://host:port/db".to_string()),
        };
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "the path of a Redis URL is its database number, not '/{db}'"
            ));
        }
        let password = parsed
            .password()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_string());
        // What the client library will refuse when connecting (TLS not built in, a bad
        // option), refused now, with the setting named by the caller.
        if let Err(e) = redis::Client::open(url) {
            let why = crate::redact::scrub(&e.to_string(), password.as_deref()).into_owned();
            return Err(if scheme == "rediss" {
                format!("rediss:// (TLS) cannot be used by this build of blossom: {why}")
            } else {
                format!("not a usable Redis URL: {why}")
            });
        }
        let mut shown = format!("{scheme}://");
        if !parsed.username().is_empty() || password.is_some() {
            shown.push_str(parsed.username());
            if password.is_some() {
                shown.push(':');
                shown.push_str(crate::redact::REDACTED);
            }
            shown.push('@');
        }
        shown.push_str(&host);
        if let Some(port) = parsed.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(parsed.path());
        if let Some(query) = parsed.query() {
            shown.push('?');
            shown.push_str(query);
        }
        if let Some(fragment) = parsed.fragment() {
            shown.push('#');
            shown.push_str(fragment);
        }
        Ok(Self {
            url: url.to_string(),
            shown,
            password,
        })
    }

    /// The URL with its password, for the connection alone.
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }

    /// The password, to scrub it from what the server or the client library says.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
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

/// What the CLI does with the calls in flight when a streaming query is interrupted
/// (`blossom.on_interrupt`): it stops reading the sources either way.
///
/// ```sql
/// SET blossom.on_interrupt = 'abandon'; -- Ctrl-C drops the calls in flight at once
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnInterrupt {
    /// The calls in flight are answered and the sink flushed before the query ends.
    #[default]
    Finish,
    /// The calls in flight are dropped and the query ends at once.
    Abandon,
}

impl FromStr for OnInterrupt {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "finish" => Ok(Self::Finish),
            "abandon" => Ok(Self::Abandon),
            other => Err(format!("expected 'finish' or 'abandon', got '{other}'")),
        }
    }
}

impl fmt::Display for OnInterrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Finish => "finish",
            Self::Abandon => "abandon",
        })
    }
}

/// Which pairs a semantic join asks about (`blossom.join_prefilter`): all, or only those
/// whose texts' embeddings are similar enough.
///
/// ```sql
/// SET blossom.join_prefilter = 'cosine:0.3'; -- pairs with a cosine similarity of 0.3 or more
/// SET blossom.join_prefilter = 'top:5';      -- each left text's 5 most similar right texts
/// SET blossom.join_prefilter = 'off';        -- every pair
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum JoinPrefilter {
    /// Every pair.
    #[default]
    Off,
    /// Pairs whose cosine similarity is at least this.
    Cosine(f64),
    /// For each left text, this many right texts, the most similar first.
    Top(usize),
}

impl FromStr for JoinPrefilter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let value = s.trim().to_ascii_lowercase();
        if value.is_empty() || value == "off" {
            return Ok(Self::Off);
        }
        let why = || {
            format!(
                "expected 'off', 'cosine:T' (T from -1 to 1) or 'top:K' (K a positive integer), got '{}'",
                s.trim()
            )
        };
        match value.split_once(':') {
            Some(("cosine", t)) => match t.trim().parse::<f64>() {
                Ok(t) if (-1.0..=1.0).contains(&t) => Ok(Self::Cosine(t)),
                _ => Err(why()),
            },
            Some(("top", k)) => match k.trim().parse::<usize>() {
                Ok(k) if k > 0 => Ok(Self::Top(k)),
                _ => Err(why()),
            },
            _ => Err(why()),
        }
    }
}

impl fmt::Display for JoinPrefilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Cosine(t) => write!(f, "cosine:{t}"),
            Self::Top(k) => write!(f, "top:{k}"),
        }
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

/// Declares [`BlossomOptions`] from one entry per field, like DataFusion's own
/// `config_namespace!`: its fields, their defaults, and [`SETTINGS`], the table that
/// `SET`, `SHOW ALL` and [`BlossomOptions::from_env`] read.
///
/// A setting's entry is its doc comment (both the field's rustdoc and the description
/// `SHOW ALL` prints), `#[key = "..."]` when the setting is not named after the field,
/// the field with its type and default, `parse` (the trimmed `SET` text to the field's
/// value, or why not) and `env`, the variable that overrides the default, if any. How a
/// value shows is its type's [`Shown`]. Fields before `settings` are not settings: no
/// `SET` reaches them and `SHOW ALL` does not list them.
macro_rules! blossom_options {
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
    (@env) => { None };
    (@env $env:literal) => { Some($env) };
    (
        $(#[$meta:meta])*
        pub struct BlossomOptions {
            $(
                $(#[doc = $other_doc:literal])*
                pub $other:ident: $other_ty:ty = $other_default:expr;
            )*
            settings {
                $(
                    $(#[doc = $doc:literal])*
                    $(#[key = $key:literal])?
                    pub $field:ident: $ty:ty = $default:expr,
                        parse = $parse:expr $(, env = $env:literal)?;
                )*
            }
        }
    ) => {
        $(#[$meta])*
        pub struct BlossomOptions {
            $(
                $(#[doc = $other_doc])*
                pub $other: $other_ty,
            )*
            $(
                #[doc = concat!("`blossom.", blossom_options!(@key $field $($key)?), "`:")]
                $(#[doc = $doc])*
                $(
                    #[doc = ""]
                    #[doc = concat!("The environment variable `", $env, "` sets its default.")]
                )?
                pub $field: $ty,
            )*
        }

        impl Default for BlossomOptions {
            fn default() -> Self {
                Self {
                    $($other: $other_default,)*
                    $($field: $default,)*
                }
            }
        }

        /// Every setting, in the order `SHOW ALL` lists them.
        static SETTINGS: &[Setting] = &[
            $(
                Setting {
                    key: blossom_options!(@key $field $($key)?),
                    description: concat!($($doc),*).trim_ascii(),
                    env: blossom_options!(@env $($env)?),
                    set: |options, value| {
                        options.$field = ($parse)(value)?;
                        Ok(())
                    },
                    show: |options| options.$field.shown(),
                },
            )*
        ];
    };
}

blossom_options! {
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
        /// `POLLINATIONS_API_KEY` or `OPENAI_API_KEY` from the environment, by preset: a
        /// provider's own key, sent only to that provider's hosts.
        pub provider_keys: ProviderKeys = ProviderKeys::default();

        settings {
            /// Provider preset: 'pollinations' (default), 'openai', 'ollama' or 'custom'
            /// (needs blossom.base_url)
            pub provider: ProviderPreset = ProviderPreset::Pollinations,
                parse = str::parse, env = "BLOSSOM_PROVIDER";

            /// OpenAI-compatible base URL, e.g. 'http://localhost:11434/v1'; empty means the
            /// preset's
            pub base_url: Option<String> = None,
                parse = parse_base_url, env = "BLOSSOM_BASE_URL";

            /// Model name; empty means the preset's default model
            pub model: Option<String> = None,
                parse = text_or_none, env = "BLOSSOM_MODEL";

            /// Model of embed(); empty means the preset's (text-embedding-3-small;
            /// nomic-embed-text for ollama)
            pub embedding_model: Option<String> = None,
                parse = text_or_none;

            /// Price of blossom.model's prompt tokens, in USD per million; empty means the
            /// price table's (see the README's Cost section)
            pub price_input: Option<f64> = None,
                parse = or_none(price);

            /// Price of blossom.model's answer tokens, in USD per million; empty means the
            /// price table's
            pub price_output: Option<f64> = None,
                parse = or_none(price);

            /// API key sent as a bearer token; write-only, always shown redacted
            pub api_key: ApiKey = ApiKey::default(),
                parse = |key: &str| Ok::<_, String>(ApiKey::new(key)),
                env = "BLOSSOM_API_KEY";

            /// Sampling temperature sent with each request; empty leaves it to the provider
            pub temperature: Option<f64> = None,
                parse = or_none(number_if(|t: f64| (0.0..=2.0).contains(&t),
                    "must be between 0 and 2"));

            /// Largest answer, in tokens, asked of the provider (sent as max_tokens); empty
            /// leaves it to the provider
            pub max_answer_tokens: Option<u32> = None,
                parse = or_none(number_if(|n: u32| n > 0, "must be a positive integer"));

            /// Seconds before one request is abandoned (and retried)
            #[key = "request_timeout"]
            pub request_timeout_secs: f64 = 60.0,
                parse = number_if(|t: f64| t > 0.0 && t <= 86_400.0,
                    "must be a number of seconds above 0");

            /// Requests in flight at once, shared by every AI function of the session; empty
            /// means the preset's
            pub max_concurrency: Option<usize> = None,
                parse = or_none(number_if(|n: usize| (1..=10_000).contains(&n),
                    "must be an integer from 1 to 10000"));

            /// Requests started per minute, shared by every AI function of the session; 0
            /// means no limit; empty means the preset's
            pub requests_per_minute: Option<u32> = None,
                parse = or_none(number::<u32>);

            /// Retries of one request after a 429, a 5xx, a timeout, a connection error or
            /// an empty answer
            pub max_retries: u32 = 5,
                parse = number_if(|n: u32| n <= 100, "must be an integer from 0 to 100");

            /// First retry delay in milliseconds; doubles with each retry, with jitter
            pub retry_initial_backoff_ms: u64 = 500,
                parse = number::<u64>;

            /// Longest retry delay in milliseconds, unless the provider asks for longer with
            /// Retry-After
            pub retry_max_backoff_ms: u64 = 30_000,
                parse = number::<u64>;

            /// Consecutive attempts finding the provider unreachable (refused, timed out,
            /// 502/503/504) that open the circuit breaker: requests then wait while one probe
            /// at a time is sent; 0 turns it off
            pub breaker_failures: u32 = 5,
                parse = number_if(|n: u32| n <= 10_000,
                    "must be an integer from 0 (off) to 10000");

            /// Seconds the provider may stay unreachable (the circuit breaker open) before
            /// the query fails
            #[key = "max_outage"]
            pub max_outage_secs: f64 = 300.0,
                parse = number_if(|t: f64| t > 0.0 && t <= 86_400.0,
                    "must be a number of seconds above 0");

            /// What a row that still fails after its retries does: 'fail' (the query fails)
            /// or 'null' (the row gets NULL)
            pub on_error: OnError = OnError::Fail,
                parse = str::parse;

            /// Directory of the persistent response cache (file responses.redb), or 'off';
            /// empty means the user's cache directory (BLOSSOM_CACHE sets the default)
            pub cache: CacheSetting = CacheSetting::UserDefault,
                parse = str::parse, env = "BLOSSOM_CACHE";

            /// Seconds a cached answer stays valid; older ones are asked again and
            /// overwritten; empty means they never expire
            #[key = "cache_ttl"]
            pub cache_ttl_secs: Option<f64> = None,
                parse = or_none(number_if(|t: f64| t > 0.0 && t <= 3_153_600_000.0,
                    "must be a number of seconds above 0 (empty: never expires)"));

            /// Most rows packed into one request for functions with short answers (sentiment,
            /// categorize, ai_filter, ai_score, extract, translate); 1 sends every row on its own
            pub pack_rows: usize = DEFAULT_PACK_ROWS,
                parse = number_if(|n: usize| (1..=MAX_PACK_ROWS).contains(&n),
                    "must be an integer from 1 to 64"),
                env = "BLOSSOM_PACK_ROWS";

            /// Most estimated tokens (characters / 4) of row text in one packed request; a
            /// pack is filled up to this or to pack_rows rows, whichever comes first
            pub pack_tokens: usize = DEFAULT_PACK_TOKENS,
                parse = number_if(|n: usize| (100..=100_000).contains(&n),
                    "must be an integer from 100 to 100000");

            /// Over a stream: milliseconds rows that arrive one by one wait for more to
            /// fill a pack before they are asked; 0 asks each batch at once
            pub pack_wait_ms: u64 = DEFAULT_PACK_WAIT_MS,
                parse = number_if(|n: u64| n <= 10_000,
                    "must be an integer from 0 to 10000");

            /// Budget of one query: provider requests (retries included) it may send before
            /// it stops with an error; empty means no budget
            pub max_requests: Option<u64> = None,
                parse = or_none(number_if(|n: u64| n > 0,
                    "must be a positive integer (empty: no budget)"));

            /// Budget of one query: tokens (prompt plus answer, as the provider reports them)
            /// it may spend before it stops with an error; empty means no budget
            pub max_tokens: Option<u64> = None,
                parse = or_none(number_if(|n: u64| n > 0,
                    "must be a positive integer (empty: no budget)"));

            /// Budget of one query: USD (tokens at blossom.price_input and price_output) it
            /// may spend before it stops with an error; empty means no budget
            pub max_cost: Option<f64> = None,
                parse = or_none(number_if(|usd: f64| usd > 0.0 && usd.is_finite(),
                    "must be a positive number of USD (empty: no budget)"));

            /// Longest prompt, in characters, that ai_reduce sends; a longer list is split
            /// into chunks whose partial answers are combined
            pub max_prompt_chars: usize = DEFAULT_MAX_PROMPT_CHARS,
                parse = or_default(DEFAULT_MAX_PROMPT_CHARS,
                    number_if(|n: usize| n > 0, "must be a positive integer"));

            /// Texts of each side that a semantic join (ai_match in JOIN ... ON, or in a
            /// WHERE over two tables) asks about in one prompt, the model listing the
            /// matching pairs; 1 asks each pair on its own
            pub join_block: usize = DEFAULT_JOIN_BLOCK,
                parse = number_if(|n: usize| (1..=MAX_JOIN_BLOCK).contains(&n),
                    "must be an integer from 1 to 64");

            /// The pairs a semantic join asks about: 'off' (all), 'cosine:T' (those whose
            /// embeddings' cosine similarity is at least T, from -1 to 1) or 'top:K' (for
            /// each left text, its K most similar right texts)
            pub join_prefilter: JoinPrefilter = JoinPrefilter::Off,
                parse = str::parse;

            /// Whether ai_match's condition is symmetric (a matches b exactly when b
            /// matches a): a semantic join then asks once per unordered pair of texts
            pub join_symmetric: bool = false,
                parse = boolean;

            /// What Ctrl-C or SIGTERM during a query over a streaming source does with
            /// the calls in flight once reading stops: 'finish' (answer them, flush the
            /// sink) or 'abandon' (drop them); a second Ctrl-C always abandons
            pub on_interrupt: OnInterrupt = OnInterrupt::Finish,
                parse = str::parse;

            /// URL of the limiter of a distributed query (http://host:port), whose
            /// max_concurrency, requests_per_minute and Retry-After pauses every worker
            /// shares; set by the coordinator for its workers; empty means this process's
            /// limits alone
            pub cluster_limiter: Option<String> = None,
                parse = parse_limiter_url, env = "BLOSSOM_CLUSTER_LIMITER";

            /// The blossom worker processes (host:port, separated by commas) that run
            /// the stages of a query holding AI calls: a session started with workers
            /// (--workers) is their coordinator, and may change the list between
            /// queries; empty means one process
            pub workers: Option<String> = None,
                parse = parse_worker_list, env = "BLOSSOM_WORKERS";
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
        for setting in SETTINGS {
            let Some(env) = setting.env else { continue };
            if let Some(value) = var(env) {
                options.set_option(setting.key, &value).map_err(|e| {
                    DataFusionError::Configuration(format!(
                        "the environment variable {env}: {}",
                        configuration_message(&e)
                    ))
                })?;
            }
        }
        options.provider_keys = ProviderKeys {
            pollinations: ApiKey::new(var("POLLINATIONS_API_KEY").unwrap_or_default()),
            openai: ApiKey::new(var("OPENAI_API_KEY").unwrap_or_default()),
        };
        Ok(options)
    }

    /// Sets one option by its name without the `blossom.` prefix, as `SET` does.
    pub fn set_option(&mut self, key: &str, value: &str) -> Result<()> {
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            let known: Vec<String> = SETTINGS
                .iter()
                .map(|s| format!("blossom.{}", s.key))
                .collect();
            return Err(DataFusionError::Configuration(format!(
                "unknown setting 'blossom.{key}'; known settings: {}",
                known.join(", ")
            )));
        };
        (setting.set)(self, value.trim()).map_err(|why| {
            // A refused URL may hold a password: it is not echoed.
            let value = crate::redact::redact_url_passwords(value);
            DataFusionError::Configuration(format!(
                "invalid value '{value}' for blossom.{key}: {why}"
            ))
        })
    }

    /// The value of one option as `SHOW` prints it; the API key is redacted.
    #[cfg(test)]
    fn value_of(&self, key: &str) -> Option<String> {
        SETTINGS
            .iter()
            .find(|s| s.key == key)
            .and_then(|s| (s.show)(self))
    }

    /// What one query may spend (`blossom.max_requests`, `blossom.max_tokens`,
    /// `blossom.max_cost`).
    pub fn budget(&self) -> Budget {
        Budget {
            max_requests: self.max_requests,
            max_tokens: self.max_tokens,
            max_cost: self.max_cost,
        }
    }

    /// The price of `model`'s tokens: `blossom.price_input` and `blossom.price_output`
    /// where set, else the price table's ([`listed_price`]); every model of a preset
    /// whose models run on the user's machine (Ollama) is free. `None` when a price is
    /// neither set nor listed: the cost is then unknown, not 0.
    fn chat_price(&self, preset: &Preset, model: &str) -> Option<Price> {
        let listed = if preset.local {
            Some(Price::FREE)
        } else {
            listed_price(model)
        };
        Some(Price {
            input: self.price_input.or(listed.map(|p| p.input))?,
            output: self.price_output.or(listed.map(|p| p.output))?,
        })
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
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| preset.model.to_string());
        let embedding_model = self
            .embedding_model
            .clone()
            .unwrap_or_else(|| preset.embedding_model.to_string());
        Ok(ProviderSettings {
            embeddings_url: embeddings_url_for(&chat_url),
            api_key: self.key_for(&chat_url),
            price: self.chat_price(preset, &model),
            embedding_price: if preset.local {
                Some(Price::FREE)
            } else {
                listed_price(&embedding_model)
            },
            embedding_model,
            chat_url,
            model,
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
            cache: self.cache.location(),
            cache_ttl: self.cache_ttl_secs.map(Duration::from_secs_f64),
            pack_rows: self.pack_rows,
            pack_tokens: self.pack_tokens,
            max_prompt_chars: self.max_prompt_chars,
            cluster_limiter: self.cluster_limiter.clone(),
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
    /// Its models run on the user's machine: every token is free.
    local: bool,
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
        local: false,
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
        local: false,
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
        local: true,
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
        local: false,
    },
];

/// The price of a model's tokens, in USD per million.
///
/// ```sql
/// SET blossom.price_input = 0.15;  -- USD per million prompt tokens
/// SET blossom.price_output = 0.60; -- USD per million answer tokens
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// USD per million prompt (input) tokens.
    pub input: f64,
    /// USD per million answer (output) tokens.
    pub output: f64,
}

/// Nano-USD (10^-9 USD) in one USD: costs are added up in whole nano-USD, so that the
/// counters shared by a query's requests stay exact.
pub const NANO_USD_PER_USD: f64 = 1e9;

impl Price {
    /// Tokens that cost nothing (a model on the user's machine).
    pub const FREE: Price = Price {
        input: 0.0,
        output: 0.0,
    };

    /// What `input` prompt tokens and `output` answer tokens cost, in nano-USD, rounded
    /// to the nearest.
    pub fn cost_nanos(&self, input: u64, output: u64) -> u64 {
        // USD per million tokens is nano-USD per thousandth of a token.
        let nanos = (input as f64 * self.input + output as f64 * self.output) * 1_000.0;
        nanos.round().clamp(0.0, u64::MAX as f64) as u64
    }
}

/// Well-known models' list prices in USD per million tokens, as (name, input, output):
/// standard tier, without batch or cached-input discounts, as published by the vendors
/// (OpenAI's and Anthropic's pricing pages) in mid-2025. Prices change: a user
/// overrides them with `blossom.price_input` and `blossom.price_output`, which also
/// price a model not listed here (whose cost is otherwise unknown, NULL, never 0).
/// Pollinations' models are not listed: it bills in its own credits (pollen), not USD.
/// Ollama's models are free whatever their name (they run on the user's machine).
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("text-embedding-ada-002", 0.10, 0.0),
];

/// The price table's price of `model`, if it lists the model. A name is matched in
/// lower case, without a gateway's `vendor/` prefix, a dated snapshot's suffix
/// (`-2024-07-18`, `-20241022`) or `-latest`, and with `.` read as `-`.
///
/// ```
/// use blossom_sql::config::listed_price;
/// let mini = listed_price("openai/gpt-4o-mini-2024-07-18").unwrap();
/// assert_eq!((mini.input, mini.output), (0.15, 0.60));
/// assert_eq!(listed_price("anthropic/claude-3.5-haiku"), listed_price("claude-3-5-haiku-20241022"));
/// assert_eq!(listed_price("my-fine-tune"), None);
/// ```
pub fn listed_price(model: &str) -> Option<Price> {
    let wanted = table_name(model);
    PRICES
        .iter()
        .find(|(name, _, _)| table_name(name) == wanted)
        .map(|&(_, input, output)| Price { input, output })
}

/// A model's name as the price table is matched: lower case, without a `vendor/`
/// prefix, a date suffix or `-latest`, with `.` as `-`.
fn table_name(model: &str) -> String {
    let name = model.trim().to_ascii_lowercase();
    let name = name.rsplit('/').next().unwrap_or_default();
    let name = name.strip_suffix("-latest").unwrap_or(name);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = name.split('-').collect();
    let keep = match parts.as_slice() {
        [_, .., day] if digits(day, 8) => parts.len() - 1,
        [_, .., y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2) => parts.len() - 3,
        _ => parts.len(),
    };
    parts[..keep].join("-").replace('.', "-")
}

/// A price in USD per million tokens.
fn price(value: &str) -> std::result::Result<f64, String> {
    let why = "must be a number of USD per million tokens, 0 or more (empty: the price table's)";
    match value.parse::<f64>() {
        Ok(usd) if usd >= 0.0 && usd.is_finite() => Ok(usd),
        _ => Err(why.to_string()),
    }
}

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

/// One `blossom.*` setting, as [`blossom_options!`] declares it.
struct Setting {
    /// The name after `blossom.`.
    key: &'static str,
    /// What `SHOW ALL` prints next to it.
    description: &'static str,
    /// The environment variable that overrides the default, if any.
    env: Option<&'static str>,
    /// Parses the trimmed `SET` text into the options, or says why not (and changes
    /// nothing).
    set: fn(&mut BlossomOptions, &str) -> std::result::Result<(), String>,
    /// The value as `SHOW ALL` prints it; `None` when unset.
    show: fn(&BlossomOptions) -> Option<String>,
}

/// How a setting's value shows in `SHOW ALL`; `None` is an unset value.
trait Shown {
    fn shown(&self) -> Option<String>;
}

macro_rules! shown_as_displayed {
    ($($ty:ty),*) => {
        $(impl Shown for $ty {
            fn shown(&self) -> Option<String> {
                Some(self.to_string())
            }
        })*
    };
}

shown_as_displayed!(
    ProviderPreset,
    OnError,
    OnInterrupt,
    CacheSetting,
    JoinPrefilter,
    bool,
    f64,
    u32,
    u64,
    usize
);

impl<T: fmt::Display> Shown for Option<T> {
    fn shown(&self) -> Option<String> {
        self.as_ref().map(ToString::to_string)
    }
}

/// The key itself is never shown: a set key shows as `<redacted>`.
impl Shown for ApiKey {
    fn shown(&self) -> Option<String> {
        self.is_set().then(|| self.to_string())
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

/// The URL of a cluster limiter: http or https, no credentials (the cluster token is
/// sent as a header), no trailing `/`.
fn parse_limiter_url(value: &str) -> std::result::Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected http://host:port".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "no credentials in the URL: the limiter takes BLOSSOM_CLUSTER_TOKEN".to_string(),
        );
    }
    Ok(Some(value.trim_end_matches('/').to_string()))
}

/// `list` (`host:port` entries separated by commas, optionally `http://host:port`) as
/// worker URLs, without repeats. An entry that is not a host and a port is an error
/// naming it.
///
/// ```
/// use blossom_sql::config::worker_urls;
/// let urls = worker_urls("127.0.0.1:50051, localhost:50052").unwrap();
/// assert_eq!(urls[1].as_str(), "http://localhost:50052/");
/// assert!(worker_urls("127.0.0.1").is_err());
/// assert!(worker_urls("").unwrap().is_empty());
/// ```
pub fn worker_urls(list: &str) -> std::result::Result<Vec<url::Url>, String> {
    let mut urls: Vec<url::Url> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let text = if entry.contains("://") {
            entry.to_string()
        } else {
            format!("http://{entry}")
        };
        let bad = |why: &str| format!("invalid worker '{entry}': {why} (expected host:port)");
        let url = url::Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.port().is_none() {
            return Err(bad("no port"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in a worker address"));
        }
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(urls)
}

/// A worker's name as the user writes it: `host:port`.
pub fn worker_address(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => url.to_string(),
    }
}

/// `blossom.workers`: the list, checked, as `host:port` entries; `None` when empty.
fn parse_worker_list(value: &str) -> std::result::Result<Option<String>, String> {
    let urls = worker_urls(value)?;
    Ok((!urls.is_empty()).then(|| {
        urls.iter()
            .map(|url| match url.scheme() {
                "https" => url.as_str().trim_end_matches('/').to_string(),
                _ => worker_address(url),
            })
            .collect::<Vec<_>>()
            .join(",")
    }))
}

/// The text, or `None` when it is empty.
fn text_or_none(value: &str) -> std::result::Result<Option<String>, String> {
    Ok((!value.is_empty()).then(|| value.to_string()))
}

/// `true` or `false` (also `on`/`off`, `yes`/`no`, `1`/`0`), in any case.
fn boolean(value: &str) -> std::result::Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// A number of type `T`.
fn number<T: FromStr>(value: &str) -> std::result::Result<T, String> {
    value.parse::<T>().map_err(|_| "not a number".to_string())
}

/// A number that `ok` accepts; `why` says which ones it does.
fn number_if<T: FromStr + Copy>(
    ok: impl Fn(T) -> bool,
    why: &'static str,
) -> impl Fn(&str) -> std::result::Result<T, String> {
    move |value| {
        let n = number(value)?;
        if ok(n) { Ok(n) } else { Err(why.to_string()) }
    }
}

/// What `parse` reads, or `None` for an empty value or 'default'.
fn or_none<T>(
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> impl Fn(&str) -> std::result::Result<Option<T>, String> {
    move |value| {
        if is_default(value) {
            Ok(None)
        } else {
            parse(value).map(Some)
        }
    }
}

/// What `parse` reads, or `default` for an empty value or 'default'.
fn or_default<T: Copy>(
    default: T,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> impl Fn(&str) -> std::result::Result<T, String> {
    move |value| {
        if is_default(value) {
            Ok(default)
        } else {
            parse(value)
        }
    }
}

fn is_default(value: &str) -> bool {
    value.is_empty() || value.eq_ignore_ascii_case("default")
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
        SETTINGS
            .iter()
            .map(|setting| ConfigEntry {
                key: format!("{}.{}", Self::PREFIX, setting.key),
                value: (setting.show)(self),
                description: setting.description,
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
    /// The price of `model`'s tokens; `None` when it is unknown.
    pub price: Option<Price>,
    /// The price of `embedding_model`'s tokens; `None` when it is unknown.
    pub embedding_price: Option<Price>,
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
    /// Where the persistent response cache is; `None` when it is off.
    pub cache: Option<CacheLocation>,
    /// How long a cached answer stays valid; `None` means forever.
    pub cache_ttl: Option<Duration>,
    /// Rows per request for functions that pack; 1 means no packing.
    pub pack_rows: usize,
    /// Most estimated tokens of row text in one packed request (`blossom.pack_tokens`).
    pub pack_tokens: usize,
    /// The longest prompt a reducing function sends (`blossom.max_prompt_chars`).
    pub max_prompt_chars: usize,
    /// The cluster's shared limiter (`blossom.cluster_limiter`), if any.
    pub cluster_limiter: Option<String>,
}

/// What one query may spend at the provider (`blossom.max_requests`,
/// `blossom.max_tokens`, `blossom.max_cost`); `None` means no limit.
///
/// ```sql
/// SET blossom.max_requests = 500;
/// SET blossom.max_tokens = 200000;
/// SET blossom.max_cost = 0.50; -- USD
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    /// Requests, retries included.
    pub max_requests: Option<u64>,
    /// Prompt plus answer tokens, as the provider reports them.
    pub max_tokens: Option<u64>,
    /// USD: tokens at the model's [`Price`].
    pub max_cost: Option<f64>,
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
            ("cache", "redis://127.0.0.1:6379/x"),
            ("cache", "s3://bucket/cache"),
            ("max_prompt_chars", "0"),
            ("max_prompt_chars", "-5"),
            ("max_prompt_chars", "lots"),
            ("cluster_limiter", "redis://127.0.0.1:1"),
            ("cluster_limiter", "http://user:pw@127.0.0.1:1"),
            ("workers", "10.0.0.1"),
            ("workers", "h1:1,ftp://h:2"),
            ("workers", "http://user:pw@h:1"),
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
                o.resolve().unwrap().cache,
                Some(CacheLocation::Dir(dir.join("blossom-sql")))
            );
        }
        o.set_option("cache", "OFF").unwrap();
        assert_eq!(o.resolve().unwrap().cache, None);
        assert_eq!(o.value_of("cache").as_deref(), Some("off"));
        o.set_option("cache", "/tmp/some where").unwrap();
        assert_eq!(
            o.resolve().unwrap().cache,
            Some(CacheLocation::Dir(PathBuf::from("/tmp/some where")))
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
    fn a_redis_cache_is_a_url_whose_password_is_never_shown() {
        let mut o = BlossomOptions::default();
        o.set_option("cache", "redis://127.0.0.1:6379/0").unwrap();
        assert_eq!(
            o.value_of("cache").as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
        let Some(CacheLocation::Redis(url)) = o.resolve().unwrap().cache else {
            panic!("a Redis cache: {:?}", o.cache);
        };
        assert_eq!(url.expose(), "redis://127.0.0.1:6379/0");
        assert_eq!(url.password(), None);

        let secret = "pw_never_shown_42";
        for (given, shown) in [
            (
                format!("redis://:{secret}@cache.internal:6380/3"),
                "redis://:<redacted>@cache.internal:6380/3",
            ),
            (
                format!("redis://app:{secret}@10.0.0.5"),
                "redis://app:<redacted>@10.0.0.5",
            ),
        ] {
            o.set_option("cache", &given).unwrap();
            assert_eq!(o.value_of("cache").as_deref(), Some(shown), "{given}");
            let entries: Vec<_> = o.entries().into_iter().filter_map(|e| e.value).collect();
            assert!(!entries.iter().any(|v| v.contains(secret)), "SHOW ALL");
            assert!(!format!("{o:?}").contains(secret), "Debug of the options");
            let resolved = o.resolve().unwrap();
            assert!(
                !format!("{resolved:?}").contains(secret),
                "Debug of the settings"
            );
            let Some(CacheLocation::Redis(url)) = resolved.cache else {
                panic!("a Redis cache");
            };
            assert_eq!(url.password(), Some(secret));
            assert_eq!(url.expose(), given);
        }

        // A refused URL is echoed without its password.
        for bad in [
            format!("redis://:{secret}@host:6379/zero"),
            format!("redis://:{secret}@"),
            format!("http://:{secret}@host/cache"),
        ] {
            let err = o.set_option("cache", &bad).unwrap_err().to_string();
            assert!(err.contains("blossom.cache"), "{err}");
            assert!(!err.contains(secret), "{err}");
            assert!(err.contains("<redacted>"), "{err}");
        }
    }

    #[test]
    fn every_setting_is_documented_parses_its_default_and_shows_what_it_was_set_to() {
        // A value other than the default for every setting, and how it shows.
        let samples: &[(&str, &str, &str)] = &[
            ("provider", "ollama", "ollama"),
            ("base_url", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
            ("model", "llama3.2", "llama3.2"),
            ("embedding_model", "nomic-embed-text", "nomic-embed-text"),
            ("price_input", "0.15", "0.15"),
            ("price_output", "0", "0"),
            ("api_key", "sk_sample_secret", "<redacted>"),
            ("temperature", "0.5", "0.5"),
            ("max_answer_tokens", "100", "100"),
            ("request_timeout", "1.5", "1.5"),
            ("max_concurrency", "3", "3"),
            ("requests_per_minute", "0", "0"),
            ("max_retries", "2", "2"),
            ("retry_initial_backoff_ms", "10", "10"),
            ("retry_max_backoff_ms", "20", "20"),
            ("breaker_failures", "0", "0"),
            ("max_outage", "9", "9"),
            ("on_error", "null", "null"),
            (
                "cache",
                "redis://:sk_sample_secret@127.0.0.1:6379/0",
                "redis://:<redacted>@127.0.0.1:6379/0",
            ),
            ("cache_ttl", "60", "60"),
            ("pack_rows", "1", "1"),
            ("pack_tokens", "500", "500"),
            ("pack_wait_ms", "0", "0"),
            ("max_requests", "7", "7"),
            ("max_tokens", "1000", "1000"),
            ("max_cost", "0.25", "0.25"),
            ("max_prompt_chars", "500", "500"),
            ("join_block", "4", "4"),
            ("join_prefilter", "Top:3", "top:3"),
            ("join_symmetric", "on", "true"),
            ("on_interrupt", "Abandon", "abandon"),
            (
                "cluster_limiter",
                "http://127.0.0.1:7070/",
                "http://127.0.0.1:7070",
            ),
            (
                "workers",
                " h1:50051, http://h2:50052/,h1:50051",
                "h1:50051,h2:50052",
            ),
        ];
        let default = BlossomOptions::default();
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        let sample_keys: Vec<&str> = samples.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(
            keys, sample_keys,
            "one sample per setting, in the table's order"
        );
        for setting in SETTINGS {
            let key = setting.key;
            assert!(!setting.description.is_empty(), "{key} has no doc line");
            assert_eq!(setting.description, setting.description.trim(), "{key}");
            assert!(
                !setting.description.contains("  "),
                "{key}: {}",
                setting.description
            );

            // SET to what SHOW prints for the default changes nothing.
            let shown = default.value_of(key);
            let mut o = default.clone();
            o.set_option(key, shown.as_deref().unwrap_or(""))
                .unwrap_or_else(|e| panic!("{key} does not parse its default: {e}"));
            assert_eq!(o.value_of(key), shown, "{key}");
            assert_eq!(o.resolve().unwrap(), default.resolve().unwrap(), "{key}");
            assert_eq!(o.budget(), default.budget(), "{key}");

            let (_, value, shows) = samples.iter().find(|(k, _, _)| *k == key).unwrap();
            let mut o = default.clone();
            o.set_option(key, value).unwrap();
            assert_ne!(o, default, "{key} = '{value}' is not the default");
            assert_eq!(o.value_of(key).as_deref(), Some(*shows), "{key}");
            let entry = o
                .entries()
                .into_iter()
                .find(|e| e.key == format!("blossom.{key}"));
            assert_eq!(entry.unwrap().value.as_deref(), Some(*shows), "{key}");
            assert!(!format!("{o:?}").contains("sk_sample_secret"), "{key}");
            if let Some(env) = setting.env {
                let o =
                    BlossomOptions::from_env_with(|name| (name == env).then(|| value.to_string()));
                assert_eq!(o.unwrap().value_of(key).as_deref(), Some(*shows), "{env}");
            }
        }
    }

    #[test]
    fn every_setting_is_in_the_readme_table() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("### Settings (")
            .expect("the README's settings table");
        let table: Vec<&str> = readme[start..]
            .lines()
            .skip(1)
            .skip_while(|line| line.trim().is_empty())
            .take_while(|line| line.starts_with('|'))
            .collect();
        let table = table.join("\n");
        for setting in SETTINGS {
            assert!(
                table.contains(&format!("`{}`", setting.key)),
                "blossom.{} is missing from the README's settings table",
                setting.key
            );
        }
    }

    #[test]
    fn prices_come_from_the_table_unless_set_and_are_unknown_otherwise() {
        let price = |settings: &[(&str, &str)]| {
            let mut o = BlossomOptions::default();
            for (k, v) in settings {
                o.set_option(k, v).unwrap();
            }
            let s = o.resolve().unwrap();
            (s.price, s.embedding_price)
        };
        let listed = |model: &str| {
            let &(_, input, output) = PRICES.iter().find(|(name, _, _)| *name == model).unwrap();
            Some(Price { input, output })
        };
        // Pollinations bills in its own credits: its default model has no USD price.
        assert_eq!(price(&[]).0, None);
        assert_eq!(price(&[]).1, listed("text-embedding-3-small"));
        assert_eq!(
            price(&[("provider", "openai")]).0,
            listed("gpt-4o-mini"),
            "the OpenAI preset's default model is listed"
        );
        assert_eq!(
            price(&[("model", "openai/gpt-4.1-mini-2025-04-14")]).0,
            listed("gpt-4.1-mini")
        );
        assert_eq!(
            price(&[("model", "claude-3-5-haiku-latest")]).0,
            listed("claude-3-5-haiku")
        );
        assert_ne!(
            listed_price("gpt-4o"),
            listed_price("gpt-4o-mini"),
            "a name is not matched by its prefix"
        );
        // Every model on Ollama is free, whatever its name.
        assert_eq!(
            price(&[("provider", "ollama"), ("model", "mistral:7b")]),
            (Some(Price::FREE), Some(Price::FREE))
        );
        // The settings override the table, each on its own side.
        assert_eq!(
            price(&[("model", "gpt-4o"), ("price_input", "1.25")]).0,
            Some(Price {
                input: 1.25,
                output: 10.0
            })
        );
        // A model not listed: unknown until both prices are set.
        assert_eq!(price(&[("model", "my-tune"), ("price_input", "1")]).0, None);
        assert_eq!(
            price(&[
                ("model", "my-tune"),
                ("price_input", "1"),
                ("price_output", "2")
            ])
            .0,
            Some(Price {
                input: 1.0,
                output: 2.0
            })
        );
        let mut o = BlossomOptions::default();
        for (key, value) in [
            ("price_input", "-1"),
            ("price_output", "cheap"),
            ("price_output", "inf"),
            ("max_cost", "0"),
            ("max_cost", "-0.5"),
            ("max_cost", "NaN"),
        ] {
            let err = o.set_option(key, value).unwrap_err().to_string();
            assert!(err.contains(&format!("blossom.{key}")), "{err}");
        }
        o.set_option("max_cost", "0.5").unwrap();
        assert_eq!(o.budget().max_cost, Some(0.5));
    }

    #[test]
    fn a_cost_is_tokens_times_the_price_in_nano_usd() {
        let price = Price {
            input: 0.15,
            output: 0.60,
        };
        // 1M prompt tokens at 0.15 USD and 1M answer tokens at 0.60 USD.
        assert_eq!(price.cost_nanos(1_000_000, 1_000_000), 750_000_000);
        assert_eq!(price.cost_nanos(1, 0), 150);
        assert_eq!(price.cost_nanos(0, 0), 0);
        assert_eq!(Price::FREE.cost_nanos(u64::MAX, u64::MAX), 0);
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
