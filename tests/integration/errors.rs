//! Failures users meet: failed rows in both `on_error` modes, a provider that is down,
//! bad settings, and the API key kept out of every output.

use std::time::Duration;

use blossom_sql::sim::{FaultConfig, SimConfig};

use crate::common::*;

fn always_500() -> SimConfig {
    SimConfig {
        faults: FaultConfig {
            server_error: 1.0,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_row_fails_the_query_by_default_naming_function_input_and_cause() {
    let sim = simulator(always_500()).await;
    let ctx = session(&sim, &[("max_retries", "2")]);
    register_texts(
        &ctx,
        &[Some(
            "This blender is loud but works fine for smoothies every morning".into(),
        )],
    );
    let err = column(&ctx, "SELECT enhance(text) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("enhance()"), "{err}");
    assert!(err.contains("This blender is loud"), "{err}");
    assert!(
        !err.contains("every morning"),
        "the input is truncated: {err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    assert_eq!(sim.stats().requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_null_gives_null_for_failed_rows_and_keeps_every_row() {
    let sim = faulty_simulator(FaultConfig {
        server_error: 0.5,
        ..FaultConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_retries", "0"), ("on_error", "null")]);
    let texts = unique_texts(200);
    register_texts(&ctx, &texts);
    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();
    assert_eq!(values.len(), 200, "rows out equals rows in");
    let expected = expected_sentiments(&texts);
    let nulls = values.iter().filter(|v| v.is_none()).count();
    assert!(nulls > 0 && nulls < 200, "{nulls} NULLs");
    assert_eq!(nulls as u64, sim.stats().faults);
    for (got, want) in values.iter().zip(&expected) {
        if got.is_some() {
            assert_eq!(got, want, "a value is never wrong");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_is_named_after_the_retries() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = blossom_sql::BlossomSessionBuilder::new()
        .with_base_url(&format!("http://127.0.0.1:{port}/v1"))
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("max_retries", "2"))
        .and_then(|b| b.with_option("retry_initial_backoff_ms", "1"))
        .and_then(|b| b.build())
        .unwrap();
    let err = column(&ctx, "SELECT sentiment('great')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/v1")),
        "{err}"
    );
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_times_out_and_says_so() {
    let sim = faulty_simulator(FaultConfig {
        hang: 1.0,
        hang_for: Duration::from_secs(5),
        ..FaultConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_retries", "1"), ("request_timeout", "0.2")]);
    let err = column(&ctx, "SELECT sentiment('great')")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("within 0.2s"), "{err}");
    assert_eq!(sim.stats().requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_shows() {
    let secret = "sk_test_never_print_me_42";
    let sim = simulator(SimConfig {
        api_key: Some(secret.to_string()),
        faults: FaultConfig {
            server_error: 1.0,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("api_key", secret), ("max_retries", "1")]);
    let shown = column(
        &ctx,
        "SELECT value FROM information_schema.df_settings WHERE name = 'blossom.api_key'",
    )
    .await
    .unwrap();
    assert_eq!(shown, vec![Some("<redacted>".to_string())]);
    let all = ctx.sql("SHOW ALL").await.unwrap().collect().await.unwrap();
    let printed = datafusion::arrow::util::pretty::pretty_format_batches(&all)
        .unwrap()
        .to_string();
    assert!(printed.contains("blossom.api_key") && !printed.contains(secret));
    let debug = format!("{:?} {:?}", ctx.state().config().options(), ctx.state());
    assert!(!debug.contains(secret), "Debug output leaks the key");
    let err = column(&ctx, "SELECT sentiment('great')")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 500") && !err.contains(secret), "{err}");
    assert_eq!(sim.stats().unauthorized, 0, "the key was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_with_their_name() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    for (sql, needle) in [
        ("SET blossom.max_concurrency = 0", "blossom.max_concurrency"),
        ("SET blossom.on_error = 'skip'", "blossom.on_error"),
        (
            "SET blossom.nonsense = 1",
            "unknown setting 'blossom.nonsense'",
        ),
        ("SET blossom.base_url = 'not a url'", "blossom.base_url"),
    ] {
        let err = ctx.sql(sql).await.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(needle), "{sql}: {err}");
    }
}
