//! The AI operator leaves its session: a plan with AI calls is encoded with
//! datafusion-proto and `AiExecCodec`, decoded in a second session, and run there with
//! that session's own dispatcher and logs.

use std::sync::Arc;

use blossom_sql::execution::AiExecCodec;
use blossom_sql::observe::metrics_log;
use blossom_sql::sim::SimConfig;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};

use crate::common::*;

/// A query with a filter, a guarded call (CASE), two AI functions and an ORDER BY.
const QUERY: &str = "SELECT id, sentiment(text) AS s, \
     CASE WHEN lang = 'en' THEN enhance(text) END AS e \
     FROM 'data/reviews.csv' WHERE id < 40 ORDER BY id";

const KEY: &str = "sk-codec-test-secret-4711";

async fn plan_of(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(sql)
        .await
        .expect("query plans")
        .create_physical_plan()
        .await
        .expect("physical plan")
}

fn rows(batches: &[datafusion::arrow::array::RecordBatch]) -> String {
    pretty_format_batches(batches)
        .expect("printable")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_ai_calls_runs_in_a_second_session() {
    let sim = simulator(SimConfig::default()).await;
    let first = session(&sim, &[("api_key", KEY)]);
    let plan = plan_of(&first, QUERY).await;
    let expected = collect(Arc::clone(&plan), first.task_ctx())
        .await
        .expect("runs where it was planned");
    let asked_first = sim.stats().requests;
    assert!(asked_first > 0);

    let bytes = physical_plan_to_bytes_with_extension_codec(Arc::clone(&plan), &AiExecCodec)
        .expect("the plan encodes");
    // The plan is a description: the key stays with each session.
    assert!(
        !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the encoded plan holds the key"
    );

    let second = session(&sim, &[]);
    let decoded =
        physical_plan_from_bytes_with_extension_codec(&bytes, &second.task_ctx(), &AiExecCodec)
            .expect("the plan decodes in a blossom session");
    assert_eq!(
        displayable(decoded.as_ref()).indent(true).to_string(),
        displayable(plan.as_ref()).indent(true).to_string()
    );
    let got = collect(decoded, second.task_ctx())
        .await
        .expect("the decoded plan runs");
    assert_eq!(rows(&got), rows(&expected));
    assert!(rows(&got).contains("[simulated]"));

    // The second session asked the provider itself, and counts the work as its own.
    assert_eq!(sim.stats().requests, 2 * asked_first);
    let entries = metrics_log(&second).expect("a blossom session").entries();
    let functions: Vec<_> = entries.iter().map(|e| e.function()).collect();
    assert_eq!(functions, ["sentiment", "enhance"]);
    let here = entries[0].snapshot();
    let there = metrics_log(&first).unwrap().entries()[0].snapshot();
    assert!(here.rows > 30, "{here:?}");
    assert_eq!(here.rows, there.rows);
    assert_eq!(here.requests, there.requests);
    assert_eq!(here.query_id, there.query_id, "the query keeps its number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_the_ai_functions_refuses_the_plan() {
    let sim = simulator(SimConfig::default()).await;
    let first = session(&sim, &[]);
    let bytes =
        physical_plan_to_bytes_with_extension_codec(plan_of(&first, QUERY).await, &AiExecCodec)
            .expect("the plan encodes");
    let plain = SessionContext::new();
    let error =
        physical_plan_from_bytes_with_extension_codec(&bytes, &plain.task_ctx(), &AiExecCodec)
            .expect_err("no AI functions here");
    assert!(error.to_string().contains("sentiment"), "{error}");
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semantic_join_under_a_limit_runs_in_a_second_session() {
    let sim = simulator(SimConfig::default()).await;
    let sql = "SELECT a.id, b.id FROM 'data/reviews.csv' a JOIN 'data/reviews.csv' b \
               ON a.id < b.id AND a.lang = b.lang \
               AND ai_match(a.text, b.text, 'the two reviews express the same opinion') \
               WHERE a.id < 30 AND b.id < 30 ORDER BY a.id, b.id";
    let first = session(&sim, &[]);
    let plan = plan_of(&first, sql).await;
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(shown.contains("BlossomAiJoinExec"), "{shown}");
    let expected = collect(Arc::clone(&plan), first.task_ctx()).await.unwrap();
    assert!(!expected.is_empty());

    let bytes = physical_plan_to_bytes_with_extension_codec(Arc::clone(&plan), &AiExecCodec)
        .expect("the plan encodes");
    let second = session(&sim, &[]);
    let decoded =
        physical_plan_from_bytes_with_extension_codec(&bytes, &second.task_ctx(), &AiExecCodec)
            .expect("the plan decodes");
    assert_eq!(
        displayable(decoded.as_ref()).indent(true).to_string(),
        shown
    );
    let got = collect(decoded, second.task_ctx()).await.unwrap();
    assert_eq!(rows(&got), rows(&expected));

    // Under a LIMIT the join asks in waves, on the other side too.
    let unordered = sql.trim_end_matches(" ORDER BY a.id, b.id");
    let limited = plan_of(&first, &format!("{unordered} LIMIT 3")).await;
    let bytes =
        physical_plan_to_bytes_with_extension_codec(Arc::clone(&limited), &AiExecCodec).unwrap();
    let decoded =
        physical_plan_from_bytes_with_extension_codec(&bytes, &second.task_ctx(), &AiExecCodec)
            .unwrap();
    let shown = displayable(decoded.as_ref()).indent(true).to_string();
    assert!(shown.contains(", waves"), "{shown}");
    assert_eq!(
        shown,
        displayable(limited.as_ref()).indent(true).to_string()
    );
    assert_eq!(
        collect(decoded, second.task_ctx()).await.unwrap()[0].num_rows(),
        3
    );
}
