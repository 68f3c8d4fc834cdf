//! Per-query budgets through the `blossom` binary: a query over `blossom.max_requests`
//! exits with code 3 and a message naming the setting, and the answers it received stay
//! in the response cache, so the rerun without a budget asks only for the rest.

use blossom_sql::sim::{SimConfig, sentiment_label};

use crate::common::*;

const ROWS: u64 = 200;
const BUDGET: u64 = 50;

fn query(budget: Option<u64>) -> String {
    let set = budget
        .map(|n| format!("SET blossom.max_requests = {n}; "))
        .unwrap_or_default();
    format!(
        "{set}SELECT id, sentiment(t) AS s FROM (SELECT v AS id, 'review ' || v || ' was bad' AS t \
         FROM generate_series(1, {ROWS}) AS g(v)) ORDER BY id"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_budget_exits_3_and_keeps_its_answers_cached() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |sql: String| {
        blossom_command(&["--base-url", &sim.base_url(), "--model", "x", "-q"])
            .args(["--max-concurrency", "4", "--format", "csv", "-c", &sql])
            .env("BLOSSOM_CACHE", dir.path())
            .output()
            .expect("blossom runs")
    };

    let stopped = run(query(Some(BUDGET)));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "its next request would exceed blossom.max_requests = {BUDGET} ({BUDGET} requests sent so far)"
        )),
        "{stderr}"
    );
    assert!(stopped.stdout.is_empty(), "no partial result is printed");
    assert_eq!(sim.stats().requests, BUDGET, "exactly the budget is spent");

    let finished = run(query(None));
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert_eq!(
        sim.stats().requests,
        ROWS,
        "the rerun asks only for the rows the stopped run did not get"
    );
    let mut expected = String::from("id,s\n");
    for id in 1..=ROWS {
        let label = sentiment_label(&format!("review {id} was bad"));
        expected.push_str(&format!("{id},{label}\n"));
    }
    assert_eq!(String::from_utf8_lossy(&finished.stdout), expected);
}
