//! Queries that cannot succeed stop at once: the first row that fails for good under
//! `on_error = 'fail'` ends every other request, a refused key or account ends the query
//! in both `on_error` modes, and an outage waits behind the circuit breaker instead of
//! turning rows into NULLs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use blossom_sql::sim::{FaultConfig, SimConfig, Simulator};

use crate::common::*;

fn always(faults: FaultConfig) -> SimConfig {
    SimConfig {
        faults,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_row_failing_for_good_stops_every_other_request() {
    let sim = simulator(always(FaultConfig {
        server_error: 1.0,
        ..FaultConfig::default()
    }))
    .await;
    let (concurrency, retries) = (4, 2);
    let ctx = session(
        &sim,
        &[
            ("max_concurrency", "4"),
            ("max_retries", "2"),
            ("breaker_failures", "0"),
        ],
    );
    register_texts(&ctx, &unique_texts(300));
    let err = column(&ctx, "SELECT enhance(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("enhance()") && err.contains("HTTP 500"),
        "{err}"
    );
    let sent = sim.stats().requests;
    // Each of the rows in flight makes at most its own attempts; nothing starts after
    // the first row failed. Without the stop it was 300 x 3 = 900.
    let bound = concurrency * (retries + 1) + concurrency;
    println!("100% 500s, 300 rows: {sent} requests sent (bound {bound})");
    assert!(sent <= bound, "{sent} requests sent, more than {bound}");
    let errors = column(&ctx, "SELECT count(*) FROM blossom_errors()")
        .await
        .unwrap();
    let recorded: u64 = errors[0].as_deref().unwrap().parse().unwrap();
    assert!(
        (1..=concurrency).contains(&recorded),
        "only rows that really failed are recorded: {recorded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_drops_the_requests_in_flight_and_closes_their_connections() {
    // The first 7 requests hang at the provider for a minute; the others are answered
    // at once, through the one slot left, until the last row fails for good (its text
    // makes the classifier answer no label, even when asked firmly).
    let sim = simulator(always(FaultConfig {
        hang: 1.0,
        hang_for: Duration::from_secs(60),
        max_faults: Some(7),
        ..FaultConfig::default()
    }))
    .await;
    let ctx = session(&sim, &[("max_concurrency", "8"), ("max_retries", "0")]);
    let mut texts = unique_texts(40);
    texts[39] = Some("no label fits [[confuse-always]]".to_string());
    register_texts(&ctx, &texts);
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        column(&ctx, "SELECT categorize(text, 'good', 'bad') FROM t"),
    )
    .await
    .expect("the query ends long before the hanging requests would")
    .unwrap_err()
    .to_string();
    assert!(err.contains("categorize()"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.stats().in_flight > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.stats().in_flight,
        0,
        "the provider sees every abandoned request's connection closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_query_in_both_on_error_modes() {
    let sim = simulator(SimConfig {
        api_key: Some("the-right-key".to_string()),
        ..SimConfig::default()
    })
    .await;
    for on_error in ["fail", "null"] {
        sim.reset_stats();
        let ctx = session(
            &sim,
            &[
                ("api_key", "a-wrong-key"),
                ("max_concurrency", "4"),
                ("on_error", on_error),
            ],
        );
        register_texts(&ctx, &unique_texts(200));
        let err = column(&ctx, "SELECT sentiment(text) FROM t")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP 401"), "{err}");
        assert!(err.contains("blossom.api_key"), "names the setting: {err}");
        let sent = sim.stats().unauthorized;
        println!("401, on_error = {on_error}: {sent} requests sent for 200 rows");
        assert!(sent <= 4, "{sent} requests, more than max_concurrency");
        let errors = column(&ctx, "SELECT count(*) FROM blossom_errors()")
            .await
            .unwrap();
        assert_eq!(errors, vec![Some("0".to_string())], "no row is to blame");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credit_exits_1_from_the_cli_in_both_modes() {
    let sim = simulator(always(FaultConfig {
        payment_required: 1.0,
        ..FaultConfig::default()
    }))
    .await;
    for on_error in ["fail", "null"] {
        sim.reset_stats();
        let base_url = sim.base_url();
        let out = tokio::task::spawn_blocking(move || {
            blossom_command(&[
                "--base-url",
                &base_url,
                "--model",
                "blossom-sim",
                "--max-concurrency",
                "4",
                "--on-error",
                on_error,
                "-c",
                "SELECT sentiment(text) FROM 'data/reviews.csv'",
            ])
            .output()
            .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "on_error = {on_error}: {stderr}"
        );
        assert!(stderr.contains("HTTP 402"), "{stderr}");
        assert!(stderr.contains("blossom.api_key"), "{stderr}");
        assert!(sim.stats().requests <= 4, "{}", sim.stats().requests);
    }
}

/// A port nothing listens on, for now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_shorter_than_the_bound_turns_no_row_into_null() {
    let port = free_port();
    let ctx = blossom_sql::BlossomSessionBuilder::new()
        .with_session_config(datafusion::prelude::SessionConfig::new().with_target_partitions(1))
        .with_option("provider", "custom")
        .and_then(|b| b.with_base_url(&format!("http://127.0.0.1:{port}/v1")))
        .and_then(|b| b.with_model("blossom-sim"))
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("pack_rows", "1"))
        .and_then(|b| b.with_option("on_error", "null"))
        .and_then(|b| b.with_option("max_retries", "2"))
        .and_then(|b| b.with_option("max_concurrency", "4"))
        .and_then(|b| b.with_option("retry_initial_backoff_ms", "10"))
        .and_then(|b| b.with_option("retry_max_backoff_ms", "100"))
        .and_then(|b| b.with_option("breaker_failures", "3"))
        .and_then(|b| b.with_option("max_outage", "60"))
        .and_then(|b| b.build())
        .unwrap();
    let texts = unique_texts(50);
    register_texts(&ctx, &texts);
    // The provider comes up 1.5 s after the query started: an outage of 1.5 s, far more
    // than the 3 attempts (about 30 ms) each row may make.
    let provider = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Simulator::start_on(addr, SimConfig::default())
            .await
            .unwrap()
    });
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    let sim = provider.await.unwrap();
    assert_eq!(values, expected_sentiments(&texts), "no row is NULL");
    assert_eq!(sim.stats().requests, 50, "each row answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_bound_fails_the_query_naming_the_setting() {
    let port = free_port();
    let ctx = blossom_sql::BlossomSessionBuilder::new()
        .with_option("provider", "custom")
        .and_then(|b| b.with_base_url(&format!("http://127.0.0.1:{port}/v1")))
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("on_error", "null"))
        .and_then(|b| b.with_option("retry_initial_backoff_ms", "10"))
        .and_then(|b| b.with_option("retry_max_backoff_ms", "50"))
        .and_then(|b| b.with_option("breaker_failures", "2"))
        .and_then(|b| b.with_option("max_outage", "0.5"))
        .and_then(|b| b.build())
        .unwrap();
    register_texts(&ctx, &unique_texts(20));
    let err = column(&ctx, "SELECT sentiment(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("blossom.max_outage"), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_slower_than_the_timeout_fails_after_one_rows_retries() {
    let sim = simulator(SimConfig {
        latency: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(
        &sim,
        &[
            ("max_concurrency", "4"),
            ("max_retries", "1"),
            ("request_timeout", "0.2"),
        ],
    );
    register_texts(&ctx, &unique_texts(100));
    let started = Instant::now();
    let err = column(&ctx, "SELECT enhance(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(err.contains("within 0.2s"), "{err}");
    let sent = sim.stats().requests;
    println!(
        "provider slower than request_timeout, 100 rows: error after {:.2} s, {sent} requests",
        took.as_secs_f64()
    );
    assert!(sent <= 4 * 2 + 4, "{sent} requests");
}
