//! Progress of a statement with AI calls: a live bar on stderr while it runs (rows
//! answered, requests in flight, retries, dedup and cache hits, elapsed, ETA; only when stderr is
//! a terminal and not `-q`), then a one-line summary. A statement over a streaming
//! source has no end to show progress towards: it shows a status line instead, redrawn
//! about once a second (records in, delivered, errors, rows/s, in flight, latency
//! p50/p99, uptime; see [`super::live`]), on a terminal or, with `--progress`, as one
//! line a second on any stderr.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::live::{LiveSources, status_line};
use crate::observe::{PerWorker, SessionStats, StatsSnapshot, per_worker_since, session_stats};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// How often the status line of a streaming statement is computed again.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Watches one statement's AI work.
pub(crate) struct StatementProgress {
    stats: Option<Arc<SessionStats>>,
    before: StatsSnapshot,
    before_workers: PerWorker,
    start: Instant,
    bar: Option<(ProgressBar, JoinHandle<()>)>,
    live: bool,
    forced: bool,
}

impl StatementProgress {
    /// Starts watching; draws a bar when `live` and stderr is a terminal (`forced`:
    /// the status line of a streaming statement shows on any stderr).
    pub(crate) fn start(ctx: &SessionContext, live: bool, forced: bool) -> Self {
        let stats = session_stats(ctx);
        let before = stats.as_ref().map(|s| s.snapshot()).unwrap_or_default();
        let before_workers = stats.as_ref().map(|s| s.per_worker()).unwrap_or_default();
        let bar = match &stats {
            Some(stats) if live && std::io::stderr().is_terminal() => {
                Some(Self::draw(Arc::clone(stats), before))
            }
            _ => None,
        };
        Self {
            stats,
            before,
            before_workers,
            start: Instant::now(),
            bar,
            live,
            forced,
        }
    }

    /// The statement reads a streaming source: the bar gives way to the status line,
    /// its latency that of the queries numbered above `since_query`.
    pub(crate) fn streaming(&mut self, sources: LiveSources, since_query: u64) {
        let terminal = std::io::stderr().is_terminal();
        if !self.live || !(terminal || self.forced) {
            return;
        }
        self.clear();
        let bar = if terminal {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut last = (
                Instant::now(),
                sources.figures(since_query).stream.records_in,
            );
            let mut next = Instant::now();
            loop {
                if Instant::now() >= next {
                    let figures = sources.figures(since_query);
                    let elapsed = last.0.elapsed().as_secs_f64();
                    let read = figures.stream.records_in.saturating_sub(last.1);
                    // The first line has no interval behind it yet.
                    let rate = if elapsed >= 0.5 {
                        read as f64 / elapsed
                    } else {
                        0.0
                    };
                    last = (Instant::now(), figures.stream.records_in);
                    let line = status_line(&figures, rate);
                    if terminal {
                        ticking.set_message(line);
                    } else {
                        eprintln!("blossom: {line}");
                    }
                    next += STATUS_EVERY;
                }
                if terminal {
                    ticking.tick();
                }
                tokio::time::sleep(TICK).await;
            }
        });
        self.bar = Some((bar, ticker));
    }

    fn draw(stats: Arc<SessionStats>, before: StatsSnapshot) -> (ProgressBar, JoinHandle<()>) {
        // Hidden until the statement asks a model: plain statements show no bar.
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{spinner} {bar:30} {pos}/{len} rows · {msg} · {elapsed} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                let now = stats.snapshot().since(&before);
                if now.rows > 0 {
                    if ticking.is_hidden() {
                        ticking.set_draw_target(ProgressDrawTarget::stderr());
                    }
                    ticking.set_length(now.rows);
                    ticking.set_position(now.rows_done);
                    ticking.set_message(format!(
                        "{} in flight · {} requests · {} retries · {} dedup hits · {} cache hits · {} failed",
                        now.in_flight,
                        now.requests,
                        now.retries,
                        now.dedup_hits,
                        now.cache_hits,
                        now.failed_rows
                    ));
                }
                ticking.tick();
                tokio::time::sleep(TICK).await;
            }
        });
        (bar, ticker)
    }

    /// Stops watching: what the statement did (in all, and on each worker of a
    /// cluster), and how long it took.
    pub(crate) fn finish(mut self) -> (StatsSnapshot, PerWorker, Duration) {
        self.clear();
        let Some(stats) = self.stats.as_ref() else {
            return (
                StatsSnapshot::default(),
                PerWorker::new(),
                self.start.elapsed(),
            );
        };
        let delta = stats.snapshot().since(&self.before);
        let workers = per_worker_since(&stats.per_worker(), &self.before_workers);
        (delta, workers, self.start.elapsed())
    }

    fn clear(&mut self) {
        if let Some((bar, ticker)) = self.bar.take() {
            ticker.abort();
            bar.finish_and_clear();
        }
    }
}

impl Drop for StatementProgress {
    /// A cancelled statement (Ctrl-C in the shell) takes its bar with it.
    fn drop(&mut self) {
        self.clear();
    }
}

/// On a cluster's coordinator, what each worker did, e.g.
/// `per worker: 127.0.0.1:50051 102 rows, 99 requests · 127.0.0.1:50052 98 rows, 97 requests`;
/// `None` when no worker reported.
pub(crate) fn worker_summary(workers: &PerWorker) -> Option<String> {
    (!workers.is_empty()).then(|| {
        let each: Vec<String> = workers
            .iter()
            .map(|(worker, ai)| format!("{worker} {} rows, {} requests", ai.rows, ai.requests))
            .collect();
        format!("per worker: {}", each.join(" · "))
    })
}

/// The one-line summary of a statement that asked a model, e.g.
/// `246 rows · 240 requests (0 retries) · 6 dedup hits · 0 cache hits · 0 failed · 5210 tokens · $0.001146 · 2.31s`
/// (`cost unknown` in place of the USD when a model's price is unknown),
/// followed, when the response cache could not be used (`no_cache` says why), by how
/// many answers were paid for without it:
/// `· 240 answers paid for without the response cache (the response cache ... is in use by another process)`.
pub(crate) fn summary(
    ai: &StatsSnapshot,
    elapsed: Duration,
    no_cache: Option<&str>,
) -> Option<String> {
    (ai.rows > 0 || ai.requests > 0).then(|| {
        let mut line = format!(
            "{} rows · {} requests ({} retries) · {} dedup hits · {} cache hits · {} failed · {} tokens · {} · {:.2}s",
            ai.rows,
            ai.requests,
            ai.retries,
            ai.dedup_hits,
            ai.cache_hits,
            ai.failed_rows,
            ai.prompt_tokens + ai.completion_tokens,
            match ai.cost() {
                Some(usd) => format!("${usd:.6}"),
                None => "cost unknown".to_string(),
            },
            elapsed.as_secs_f64()
        );
        if let Some(why) = no_cache.filter(|_| ai.uncached_answers > 0) {
            line.push_str(&cache_note(ai.uncached_answers, why));
        }
        line
    })
}

/// ` · N answers paid for without the response cache (why)`.
pub(crate) fn cache_note(answers: u64, why: &str) -> String {
    format!(" · {answers} answers paid for without the response cache ({why})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_when_answers_were_paid_for_without_the_cache() {
        let ai = StatsSnapshot {
            rows: 10,
            requests: 10,
            uncached_answers: 7,
            ..StatsSnapshot::default()
        };
        let why = "the response cache /c/responses.redb is in use by another process";
        let line = summary(&ai, Duration::from_millis(500), Some(why)).expect("a line");
        assert!(
            line.ends_with(
                " · 7 answers paid for without the response cache (the response cache \
                 /c/responses.redb is in use by another process)"
            ),
            "{line}"
        );
        let cached = StatsSnapshot {
            uncached_answers: 0,
            ..ai
        };
        let line = summary(&cached, Duration::from_millis(500), Some(why)).expect("a line");
        assert!(line.ends_with("0.50s"), "{line}");
    }

    #[test]
    fn the_summary_shows_the_cost_or_that_it_is_unknown() {
        let ai = StatsSnapshot {
            rows: 3,
            requests: 2,
            prompt_tokens: 90,
            completion_tokens: 10,
            cost_nanos: 1_234_567,
            ..StatsSnapshot::default()
        };
        let line = summary(&ai, Duration::from_millis(500), None).expect("a line");
        assert!(line.contains(" · 100 tokens · $0.001235 · 0.50s"), "{line}");
        let unpriced = StatsSnapshot {
            unpriced_requests: 1,
            ..ai
        };
        let line = summary(&unpriced, Duration::from_millis(500), None).expect("a line");
        assert!(
            line.contains(" · 100 tokens · cost unknown · 0.50s"),
            "{line}"
        );
    }
}
