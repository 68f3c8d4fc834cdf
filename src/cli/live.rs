//! The live figures of a run, as the status line of a streaming query and the
//! Prometheus endpoint (`--metrics-addr`) show them: the streaming counters
//! ([`StreamStats`]), the session's AI counters ([`SessionStats`]) and the requests'
//! latency ([`MetricsLog`]). Only counts and times: no setting, key or header value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::prelude::SessionContext;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::task::JoinHandle;

use super::error::CliError;
use crate::observe::query_metrics::Latency;
use crate::observe::{
    MetricsLog, SessionStats, StatsSnapshot, StreamSnapshot, StreamStats, metrics_log,
    session_stats,
};

/// The session's counters, held apart from the session.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveSources {
    stream: Option<Arc<StreamStats>>,
    ai: Option<Arc<SessionStats>>,
    metrics: Option<Arc<MetricsLog>>,
}

/// The figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    /// The streaming counters.
    pub stream: StreamSnapshot,
    /// The session's AI counters, since it started.
    pub ai: StatsSnapshot,
    /// The latency of the requests counted (see [`LiveSources::figures`]).
    pub latency: Option<Latency>,
}

impl Figures {
    /// Bad lines, failed rows and records sent to dead-letter files.
    pub fn errors(&self) -> u64 {
        self.stream.malformed + self.ai.failed_rows + self.stream.dead_lettered
    }
}

impl LiveSources {
    /// The counters of `ctx`'s session.
    pub fn of(ctx: &SessionContext) -> Self {
        Self {
            stream: ctx.state().config().get_extension::<StreamStats>(),
            ai: session_stats(ctx),
            metrics: metrics_log(ctx),
        }
    }

    /// The streaming counters, to stop the sources or report them.
    pub fn stream(&self) -> Option<&Arc<StreamStats>> {
        self.stream.as_ref()
    }

    /// The number of the latest query with AI calls so far (0 when none).
    pub fn last_query_id(&self) -> u64 {
        self.metrics.as_ref().map_or(0, |m| m.last_query_id())
    }

    /// The figures now, with the latency of the queries numbered above `since_query`.
    pub fn figures(&self, since_query: u64) -> Figures {
        Figures {
            stream: self
                .stream
                .as_ref()
                .map(|s| s.snapshot())
                .unwrap_or_default(),
            ai: self.ai.as_ref().map(|s| s.snapshot()).unwrap_or_default(),
            latency: self
                .metrics
                .as_ref()
                .and_then(|m| m.latency_since(since_query)),
        }
    }
}

/// `1h02m03s`, `2m05s` or `7.2s`.
fn duration(ms: u64) -> String {
    let secs = ms / 1_000;
    match secs {
        0..60 => format!("{:.1}s", ms as f64 / 1_000.0),
        60..3_600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3_600, secs / 60 % 60, secs % 60),
    }
}

fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms"))
}

/// The status line of a streaming query, e.g.
/// `120 in · 118 delivered · 2 errors · 5.0 rows/s · 4 in flight · p50 51 ms · p99 70 ms · up 24.1s`;
/// `rate` is the records read per second over the last interval.
pub(crate) fn status_line(figures: &Figures, rate: f64) -> String {
    format!(
        "{} in · {} delivered · {} errors · {rate:.1} rows/s · {} in flight · p50 {} · p99 {} · up {}",
        figures.stream.records_in,
        figures.stream.delivered,
        figures.errors(),
        figures.ai.in_flight,
        millis(figures.latency.map(|l| l.p50)),
        millis(figures.latency.map(|l| l.p99)),
        duration(figures.stream.uptime_ms),
    )
}

/// The closing line of a streaming query, e.g.
/// `stream: 120 records in · 118 delivered · 1 malformed · 1 dead-lettered · 0 reconnects · up 24.1s`.
pub(crate) fn stream_summary(stream: &StreamSnapshot) -> String {
    format!(
        "stream: {} records in · {} delivered · {} malformed · {} dead-lettered · {} reconnects · up {}",
        stream.records_in,
        stream.delivered,
        stream.malformed,
        stream.dead_lettered,
        stream.reconnects,
        duration(stream.uptime_ms),
    )
}

/// The figures as Prometheus (OpenMetrics) text, every name prefixed `blossom_`.
pub(crate) fn prometheus_text(figures: &Figures) -> String {
    let mut registry = Registry::with_prefix("blossom");
    let mut counter = |name: &str, help: &str, value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    };
    let (s, ai) = (&figures.stream, &figures.ai);
    counter(
        "records_in",
        "Records read from streaming sources",
        s.records_in,
    );
    counter(
        "delivered",
        "Records streaming sinks delivered",
        s.delivered,
    );
    counter(
        "malformed",
        "Lines of streaming sources that were no record",
        s.malformed,
    );
    counter(
        "dead_lettered",
        "Records written to dead-letter files",
        s.dead_lettered,
    );
    counter(
        "reconnects",
        "Reconnections of streaming sources",
        s.reconnects,
    );
    counter("sink_retries", "Sink requests sent again", s.sink_retries);
    counter("rows", "Rows that needed an AI answer", ai.rows);
    counter(
        "requests",
        "Requests sent to the provider, retries included",
        ai.requests,
    );
    counter(
        "failed_rows",
        "Rows whose AI call failed for good",
        ai.failed_rows,
    );
    counter(
        "tokens",
        "Tokens the provider reported, prompt and answer",
        ai.prompt_tokens + ai.completion_tokens,
    );
    let gauge = |value: f64| {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        gauge
    };
    registry.register(
        "in_flight",
        "Requests to the provider in flight",
        gauge(ai.in_flight as f64),
    );
    let seconds = |pick: fn(&Latency) -> f64| {
        figures
            .latency
            .as_ref()
            .map_or(f64::NAN, |l| pick(l) / 1_000.0)
    };
    registry.register_with_unit(
        "latency_p50",
        "Median provider request latency (NaN before the first request)",
        Unit::Seconds,
        gauge(seconds(|l| l.p50)),
    );
    registry.register_with_unit(
        "latency_p99",
        "99th percentile of provider request latency (NaN before the first request)",
        Unit::Seconds,
        gauge(seconds(|l| l.p99)),
    );
    registry.register_with_unit(
        "uptime",
        "Seconds since the session started",
        Unit::Seconds,
        gauge(s.uptime_ms as f64 / 1_000.0),
    );
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

/// The Prometheus endpoint: `GET /metrics` on its address until dropped.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Parses `--metrics-addr`, listens on it and serves the session's figures.
    pub async fn start(addr: &str, ctx: &SessionContext) -> Result<Self, CliError> {
        let parsed: SocketAddr = addr.trim().parse().map_err(|_| {
            CliError::usage(format!(
                "--metrics-addr: '{addr}' is not an address and port, such as 127.0.0.1:9464"
            ))
        })?;
        let listener = tokio::net::TcpListener::bind(parsed).await.map_err(|e| {
            CliError::usage(format!("--metrics-addr: cannot listen on {parsed}: {e}"))
        })?;
        let addr = listener.local_addr().unwrap_or(parsed);
        let sources = LiveSources::of(ctx);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: try again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let sources = sources.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let sources = sources.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&sources, &request)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer<B>(sources: &LiveSources, request: &Request<B>) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, kind: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(kind),
        );
        response
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            prometheus_text(&sources.figures(0)),
        ),
        (_, "/metrics") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_string(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "the metrics are at /metrics\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            stream: StreamSnapshot {
                records_in: 120,
                malformed: 1,
                reconnects: 2,
                delivered: 118,
                dead_lettered: 1,
                sink_retries: 3,
                uptime_ms: 62_500,
            },
            ai: StatsSnapshot {
                rows: 119,
                requests: 121,
                failed_rows: 1,
                in_flight: 4,
                prompt_tokens: 900,
                completion_tokens: 100,
                ..StatsSnapshot::default()
            },
            latency: Some(Latency {
                p50: 51.0,
                p95: 65.0,
                p99: 70.0,
                max: 80.0,
            }),
        }
    }

    /// The value of the sample `name` in Prometheus text.
    fn sample(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
    }

    #[test]
    fn prometheus_text_has_every_figure_with_help_and_type() {
        let text = prometheus_text(&figures());
        for (name, value) in [
            ("blossom_records_in_total", "120"),
            ("blossom_delivered_total", "118"),
            ("blossom_malformed_total", "1"),
            ("blossom_dead_lettered_total", "1"),
            ("blossom_reconnects_total", "2"),
            ("blossom_sink_retries_total", "3"),
            ("blossom_rows_total", "119"),
            ("blossom_requests_total", "121"),
            ("blossom_failed_rows_total", "1"),
            ("blossom_tokens_total", "1000"),
            ("blossom_in_flight", "4.0"),
            ("blossom_latency_p50_seconds", "0.051"),
            ("blossom_latency_p99_seconds", "0.07"),
            ("blossom_uptime_seconds", "62.5"),
        ] {
            assert_eq!(
                sample(&text, name).as_deref(),
                Some(value),
                "{name} in\n{text}"
            );
            let family = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}: {text}"
            );
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            assert!(
                text.contains(&format!("# TYPE {family} {kind}")),
                "{family}: {text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn latency_before_any_request_is_not_a_number() {
        let text = prometheus_text(&Figures::default());
        assert_eq!(
            sample(&text, "blossom_latency_p99_seconds").as_deref(),
            Some("NaN")
        );
        assert_eq!(
            sample(&text, "blossom_records_in_total").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn the_status_line_and_the_summary_say_what_the_stream_did() {
        let line = status_line(&figures(), 5.0);
        assert_eq!(
            line,
            "120 in · 118 delivered · 3 errors · 5.0 rows/s · 4 in flight · \
             p50 51 ms · p99 70 ms · up 1m02s"
        );
        let quiet = status_line(&Figures::default(), 0.0);
        assert!(quiet.contains("p50 - · p99 -"), "{quiet}");
        assert_eq!(
            stream_summary(&figures().stream),
            "stream: 120 records in · 118 delivered · 1 malformed · 1 dead-lettered · \
             2 reconnects · up 1m02s"
        );
        assert_eq!(duration(3_725_000), "1h02m05s");
    }

    #[tokio::test]
    async fn a_bad_or_taken_address_is_refused_naming_the_flag() {
        let ctx = SessionContext::new();
        let error = MetricsServer::start("localhost", &ctx)
            .await
            .expect_err("no port");
        assert_eq!(error.code, super::super::error::EXIT_USAGE);
        assert!(
            error.message.starts_with("--metrics-addr: 'localhost'"),
            "{}",
            error.message
        );
        let server = MetricsServer::start("127.0.0.1:0", &ctx)
            .await
            .expect("listens");
        let taken = server.addr().to_string();
        let error = MetricsServer::start(&taken, &ctx).await.expect_err("taken");
        assert!(
            error.message.contains(&format!("cannot listen on {taken}")),
            "{}",
            error.message
        );
    }
}
