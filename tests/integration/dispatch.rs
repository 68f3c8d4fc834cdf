//! The dispatcher under load and faults: concurrency reached, rate limit kept, retries
//! of every fault kind, Retry-After honoured, client errors not retried, deduplication.

use std::time::{Duration, Instant};

use blossom_sql::sim::{FaultConfig, SimConfig};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_batch_keeps_max_concurrency_in_flight() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_concurrency", "16")]);
    let texts = unique_texts(1000);
    register_texts(&ctx, &texts);

    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();

    assert_eq!(values, expected_sentiments(&texts));
    let stats = sim.stats();
    assert_eq!(stats.requests, 1000);
    assert_eq!(stats.peak_in_flight, 16, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_below_the_provider_limit_gets_no_429() {
    let sim_config = SimConfig {
        requests_per_minute: Some(1200),
        rate_burst: 2,
        ..SimConfig::default()
    };
    let texts = unique_texts(50);

    let sim = simulator(sim_config.clone()).await;
    let ctx = session(
        &sim,
        &[("max_concurrency", "8"), ("requests_per_minute", "1000")],
    );
    register_texts(&ctx, &texts);
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    assert_eq!(values, expected_sentiments(&texts));
    assert_eq!(sim.stats().rate_limited, 0, "{:?}", sim.stats());
    assert_eq!(sim.stats().requests, 50);

    // The control: without our limit the same provider does answer 429, which the
    // retries absorb.
    let sim = simulator(sim_config).await;
    let ctx = session(
        &sim,
        &[
            ("max_concurrency", "8"),
            ("requests_per_minute", "0"),
            ("max_retries", "30"),
        ],
    );
    register_texts(&ctx, &texts);
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    assert_eq!(values, expected_sentiments(&texts));
    assert!(sim.stats().rate_limited > 0, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_is_retried_until_all_values_are_right() {
    let texts = unique_texts(120);
    for kind in [
        "server_error",
        "rate_limited",
        "hang",
        "drop_connection",
        "malformed_json",
        "empty_content",
    ] {
        let mut faults = FaultConfig {
            retry_after: Duration::from_millis(10),
            hang_for: Duration::from_secs(3),
            ..FaultConfig::default()
        };
        let rate = 0.3;
        match kind {
            "server_error" => faults.server_error = rate,
            "rate_limited" => faults.rate_limited = rate,
            "hang" => faults.hang = rate,
            "drop_connection" => faults.drop_connection = rate,
            "malformed_json" => faults.malformed_json = rate,
            _ => faults.empty_content = rate,
        }
        let sim = simulator(SimConfig {
            faults,
            ..SimConfig::default()
        })
        .await;
        let ctx = session(
            &sim,
            &[
                ("max_concurrency", "32"),
                ("max_retries", "12"),
                ("request_timeout", "0.3"),
            ],
        );
        register_texts(&ctx, &texts);

        let values = column(&ctx, "SELECT sentiment(text) FROM t").await;

        let stats = sim.stats();
        assert_eq!(
            values.as_ref().ok(),
            Some(&expected_sentiments(&texts)),
            "{kind}: {values:?}"
        );
        assert!(stats.faults > 0, "{kind}: no fault injected: {stats:?}");
        assert_eq!(
            stats.faults_by_kind.get(kind).copied().unwrap_or(0),
            stats.faults,
            "{kind}"
        );
        assert_eq!(
            stats.answered, 120,
            "{kind}: one good answer per row: {stats:?}"
        );
    }
}

/// One row whose first attempt gets a 429 asking for 1 s; backoff alone would wait 5 ms.
async fn elapsed_with_one_429(in_header: bool, in_body: bool) -> (Duration, u64) {
    let sim = faulty_simulator(FaultConfig {
        rate_limited: 1.0,
        max_faults: Some(1),
        retry_after: Duration::from_secs(1),
        retry_after_in_header: in_header,
        retry_after_in_body: in_body,
        ..FaultConfig::default()
    })
    .await;
    let ctx = session(&sim, &[]);
    let start = Instant::now();
    let values = column(&ctx, "SELECT sentiment('great')").await.unwrap();
    assert_eq!(values, vec![Some("POSITIVE".to_string())]);
    (start.elapsed(), sim.stats().requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_header_and_body_are_honoured() {
    for (header, body) in [(true, false), (false, true)] {
        let (elapsed, requests) = elapsed_with_one_429(header, body).await;
        assert_eq!(requests, 2);
        assert!(
            elapsed >= Duration::from_secs(1),
            "header={header} body={body}: {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_and_payment_required_are_not_retried() {
    let sim = simulator(SimConfig {
        api_key: Some("sk_right".to_string()),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(
        &sim,
        &[("api_key", "sk_wrong_key_123"), ("max_retries", "5")],
    );
    let err = column(&ctx, "SELECT sentiment('great')")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(sim.stats().requests, 1, "401 is not retried");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("sk_wrong_key_123"), "the key leaked: {err}");

    let sim = faulty_simulator(FaultConfig {
        payment_required: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_retries", "5")]);
    let err = column(&ctx, "SELECT sentiment('great')")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(sim.stats().requests, 1, "402 is not retried");
    assert!(err.contains("HTTP 402"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rows_make_one_request() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    let texts = vec![Some("I love it".to_string()); 300];
    register_texts(&ctx, &texts);
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    assert_eq!(values, expected_sentiments(&texts));
    assert_eq!(sim.stats().requests, 1);
}

/// Concurrent queries share the endpoint's limits. The rule: every request to an
/// endpoint takes a slot of one cap; a query whose `max_concurrency` differs sets it for
/// the endpoint (a smaller one takes effect as requests in flight finish). So the
/// provider never sees more in flight than the largest cap of the queries running.
/// (Before limits were keyed by endpoint, each change of settings made a new limiter,
/// and two queries with different caps together went over both.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_never_exceed_the_endpoints_cap() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_concurrency", "3")]);
    let texts = unique_texts(300);
    register_texts(&ctx, &texts);
    let run = |sql: &'static str, cap: &'static str| {
        let ctx = ctx.clone();
        async move {
            ctx.sql(&format!("SET blossom.max_concurrency = {cap}"))
                .await?
                .collect()
                .await?;
            // The DataFrame keeps the settings in force when it was made.
            ctx.sql(sql).await
        }
    };
    let a = run("SELECT sentiment(text) FROM t", "3").await.unwrap();
    let b = run("SELECT enhance(text) FROM t", "6").await.unwrap();
    let c = run("SELECT summarize(text) FROM t", "3").await.unwrap();
    let (a, b, c) = tokio::join!(a.collect(), b.collect(), c.collect());
    let rows = |batches: Vec<datafusion::arrow::array::RecordBatch>| {
        batches.iter().map(|b| b.num_rows()).sum::<usize>()
    };
    assert_eq!(rows(a.unwrap()), 300);
    assert_eq!(rows(b.unwrap()), 300);
    assert_eq!(rows(c.unwrap()), 300);
    let stats = sim.stats();
    assert_eq!(stats.requests, 900);
    assert!(stats.peak_in_flight <= 6, "{stats:?}");

    // Equal caps are one cap for the endpoint, not one each.
    sim.reset_stats();
    let a = run("SELECT sentiment(text) FROM t", "4").await.unwrap();
    let b = run("SELECT enhance(text) FROM t", "4").await.unwrap();
    let (a, b) = tokio::join!(a.collect(), b.collect());
    assert_eq!(rows(a.unwrap()) + rows(b.unwrap()), 600);
    let stats = sim.stats();
    assert_eq!(stats.requests, 600);
    assert!(stats.peak_in_flight <= 4, "{stats:?}");
}
