//! The shared response cache on Redis (`blossom.cache = 'redis://...'`), against a real
//! `redis-server` started on a free 127.0.0.1 port for each test: answers reused by
//! another session and another process, two processes at once, a server stopped
//! mid-query, a run killed with SIGKILL, and the password never shown.
//!
//! `redis-server` must be installed (`apt-get install -y redis-server`; `.ci/run`
//! installs it): without it these tests fail, they do not skip.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use blossom_sql::observe::session_stats;
use blossom_sql::sim::{SimConfig, Simulator, sentiment_label};
use datafusion::prelude::SessionContext;

use crate::common::*;
use crate::redis_server::{RedisServer, free_port};

/// The sentiments of rows `ids` (`'row <id> is great'`), in id order, as SQL over
/// `generate_series` (the same requests from a session and from the binary).
fn query(ids: &str) -> String {
    format!(
        "SELECT id, sentiment(t) AS s FROM (SELECT v AS id, 'row ' || v || ' is great' AS t \
         FROM generate_series(1, 1000) AS g(v) WHERE {ids}) ORDER BY id"
    )
}

/// What [`query`] returns as CSV for `ids`.
fn expected_csv(ids: impl Iterator<Item = u64>) -> String {
    let mut csv = String::from("id,s\n");
    for id in ids {
        let label = sentiment_label(&format!("row {id} is great"));
        csv.push_str(&format!("{id},{label}\n"));
    }
    csv
}

/// The `s` column of [`query`] from a session.
async fn sentiments(ctx: &SessionContext, ids: &str) -> Vec<Option<String>> {
    let sql = format!("SELECT s FROM ({})", query(ids));
    column(ctx, &sql).await.unwrap()
}

fn expected_sentiments_of(ids: impl Iterator<Item = u64>) -> Vec<Option<String>> {
    ids.map(|id| Some(sentiment_label(&format!("row {id} is great")).to_string()))
        .collect()
}

fn blossom_on(sim: &Simulator, cache: &str, sql: &str) -> Command {
    let mut command = blossom_command(&["--base-url", &sim.base_url(), "--model", "blossom-sim"]);
    command
        .args(["-q", "--max-concurrency", "8", "--format", "csv", "-c", sql])
        .env("BLOSSOM_CACHE", cache);
    command
}

fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "blossom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_session_and_another_process_on_one_redis_ask_nothing() {
    let redis = RedisServer::start();
    let sim = simulator(SimConfig::default()).await;
    let ids = "v <= 40";
    let expected = expected_sentiments_of(1..=40);

    let first = session(&sim, &[("cache", &redis.url())]);
    assert_eq!(sentiments(&first, ids).await, expected);
    assert_eq!(sim.stats().requests, 40);
    assert_eq!(redis.answers(), 40, "every answer is in Redis");
    drop(first);

    let second = session(&sim, &[("cache", &redis.url())]);
    assert_eq!(sentiments(&second, ids).await, expected);
    assert_eq!(sim.stats().requests, 40, "another session asks nothing");
    let stats = session_stats(&second).unwrap().snapshot();
    assert_eq!(stats.cache_hits, 40);

    let out = succeeded(
        blossom_on(&sim, &redis.url(), &query(ids))
            .output()
            .unwrap(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected_csv(1..=40));
    assert_eq!(sim.stats().requests, 40, "another process asks nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_answers_are_kept_per_row() {
    let redis = RedisServer::start();
    let sim = simulator(SimConfig::default()).await;
    let ids = "v <= 64";
    let packed = session(&sim, &[("cache", &redis.url()), ("pack_rows", "8")]);
    assert_eq!(
        sentiments(&packed, ids).await,
        expected_sentiments_of(1..=64)
    );
    assert_eq!(sim.stats().requests, 8, "eight packs of eight");
    assert_eq!(redis.answers(), 64, "one answer per row");

    let alone = session(&sim, &[("cache", &redis.url())]);
    assert_eq!(
        sentiments(&alone, ids).await,
        expected_sentiments_of(1..=64)
    );
    assert_eq!(sim.stats().requests, 8, "rows asked alone find them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_at_once_on_one_redis_ask_each_text_once() {
    let redis = RedisServer::start();
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await;
    // A warms the cache with rows 1..=100.
    succeeded(
        blossom_on(&sim, &redis.url(), &query("v <= 100"))
            .output()
            .unwrap(),
    );
    assert_eq!(sim.stats().requests, 100);
    sim.reset_stats();

    // B and C run at once: both read rows 1..=100 from Redis; B then asks 101..=150 and
    // C asks 151..=200, so together they ask each new text exactly once.
    let spawn = |ids: &str| {
        blossom_on(&sim, &redis.url(), &query(ids))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("blossom starts")
    };
    let b = spawn("v <= 150");
    let c = spawn("v <= 100 OR (v > 150 AND v <= 200)");
    let b = succeeded(b.wait_with_output().unwrap());
    let c = succeeded(c.wait_with_output().unwrap());
    assert_eq!(String::from_utf8_lossy(&b.stdout), expected_csv(1..=150));
    assert_eq!(
        String::from_utf8_lossy(&c.stdout),
        expected_csv((1..=100).chain(151..=200))
    );
    for out in [&b, &c] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("in use"), "Redis is shared: {stderr}");
    }
    assert_eq!(
        sim.stats().requests,
        100,
        "the union of B's and C's requests is their 100 texts not cached"
    );
    assert_eq!(redis.answers(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_stopped_mid_query_does_not_fail_it_and_is_used_again_when_back() {
    const ROWS: u64 = 300;
    let mut redis = RedisServer::start();
    let port = redis.port;
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let ids = format!("v <= {ROWS}");
    let ctx = session(&sim, &[("cache", &redis.url()), ("max_concurrency", "4")]);
    let running = {
        let ctx = ctx.clone();
        let ids = ids.clone();
        tokio::spawn(async move { sentiments(&ctx, &ids).await })
    };
    let started = Instant::now();
    while sim.stats().answered < 40 {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    redis.stop();
    let answered_with_redis = sim.stats().answered;
    let values = running.await.unwrap();
    assert_eq!(
        values,
        expected_sentiments_of(1..=ROWS),
        "every row is answered"
    );
    assert_eq!(
        sim.stats().requests,
        ROWS,
        "each row asked once, none failed"
    );
    let stats = session_stats(&ctx).unwrap().snapshot();
    assert!(
        stats.uncached_answers > 0 && stats.uncached_answers <= ROWS - answered_with_redis + 8,
        "the answers Redis did not keep are counted: {} (with {answered_with_redis} answered \
         before it stopped)",
        stats.uncached_answers
    );

    // The server comes back (empty: it kept nothing on disk); once the pause after the
    // failure is over, the same session writes to it again.
    let redis = RedisServer::start_on(port, None);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    sim.reset_stats();
    assert_eq!(
        sentiments(&ctx, &ids).await,
        expected_sentiments_of(1..=ROWS)
    );
    assert_eq!(sim.stats().requests, ROWS);
    let kept = redis.answers();
    assert_eq!(kept, ROWS, "the connection came back");
    sim.reset_stats();
    assert_eq!(
        sentiments(&ctx, &ids).await,
        expected_sentiments_of(1..=ROWS)
    );
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_killed_with_sigkill_resumes_from_what_redis_holds() {
    const ROWS: u64 = 1_000;
    const MAX_CONCURRENCY: u64 = 8;
    let redis = RedisServer::start();
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let sql = query("true");
    let mut child = blossom_on(&sim, &redis.url(), &sql)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("blossom starts");
    let started = Instant::now();
    while sim.stats().answered < 300 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        assert!(child.try_wait().unwrap().is_none(), "killed too late");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let answered = sim.stats().answered;
    let kept = redis.answers();
    eprintln!("SIGKILL after {answered} answers; Redis holds {kept}");
    // Every answer is written as it arrives: only those in flight (sent by the
    // simulator but not yet read, or read but not yet written) are lost.
    assert!(
        kept + 2 * MAX_CONCURRENCY >= answered && kept <= answered,
        "{kept} kept of {answered} answered"
    );
    sim.reset_stats();
    let out = succeeded(blossom_on(&sim, &redis.url(), &sql).output().unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected_csv(1..=ROWS));
    assert_eq!(
        sim.stats().requests,
        ROWS - kept,
        "the rerun pays only for the rows not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_is_never_shown() {
    let secret = "s3cret_redis_pw_81";
    let redis = RedisServer::with_password(secret);
    let sim = simulator(SimConfig::default()).await;
    let ids = "v <= 10";

    let ctx = session(&sim, &[("cache", &redis.url())]);
    let shown = column(
        &ctx,
        "SELECT value FROM information_schema.df_settings WHERE name = 'blossom.cache'",
    )
    .await
    .unwrap();
    assert_eq!(
        shown,
        vec![Some(format!(
            "redis://:<redacted>@127.0.0.1:{}/0",
            redis.port
        ))]
    );
    let leaked = column(
        &ctx,
        &format!("SELECT name FROM information_schema.df_settings WHERE value LIKE '%{secret}%'"),
    )
    .await
    .unwrap();
    assert!(leaked.is_empty(), "SHOW ALL: {leaked:?}");
    assert_eq!(sentiments(&ctx, ids).await, expected_sentiments_of(1..=10));
    assert_eq!(redis.answers(), 10, "the password opens the cache");

    // A wrong password: the query is answered uncached, and what is said names the
    // server but not the password.
    let wrong = "wrong_pw_never_shown_19";
    let url = format!("redis://:{wrong}@127.0.0.1:{}/0", redis.port);
    let refused = session(&sim, &[("cache", &url)]);
    assert_eq!(
        sentiments(&refused, ids).await,
        expected_sentiments_of(1..=10)
    );
    let stats = session_stats(&refused).unwrap();
    let why = stats.cache_unavailable().expect("the cache was refused");
    assert!(
        why.contains(&format!("redis://:<redacted>@127.0.0.1:{}/0", redis.port))
            && why.contains("blossom.cache"),
        "{why}"
    );
    assert!(!why.contains(wrong), "{why}");
    assert_eq!(stats.snapshot().uncached_answers, 10);

    let out = succeeded(blossom_on(&sim, &url, &query(ids)).output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<redacted>@127.0.0.1"), "warned: {stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected_csv(1..=10));

    // A refused SET does not echo the password either.
    let error = ctx
        .sql(&format!(
            "SET blossom.cache = 'redis://:{wrong}@127.0.0.1:{}/nope'",
            redis.port
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("blossom.cache"), "{error}");
    assert!(!error.contains(wrong), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_cannot_be_reached_is_warned_about_and_the_query_runs_uncached() {
    let sim = simulator(SimConfig::default()).await;
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let ctx = session(&sim, &[("cache", &url)]);
    assert_eq!(
        sentiments(&ctx, "v <= 5").await,
        expected_sentiments_of(1..=5)
    );
    let stats = session_stats(&ctx).unwrap();
    let why = stats.cache_unavailable().expect("the cache was refused");
    assert!(why.contains(&url) && why.contains("blossom.cache"), "{why}");
    assert_eq!(stats.snapshot().uncached_answers, 5);
    // Opened once: the next query does not try again, and says nothing new.
    assert_eq!(
        sentiments(&ctx, "v <= 5").await,
        expected_sentiments_of(1..=5)
    );
    assert_eq!(sim.stats().requests, 10);
}
