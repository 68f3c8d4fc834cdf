//! Unbounded NDJSON sources against real servers on 127.0.0.1: a chunked HTTP stream
//! that trickles records (rows come out before the stream ends), drops mid-line
//! (reconnected, the cut line recorded), carries a bad line (recorded in
//! `blossom_errors()` and the dead-letter file, the stream goes on), refuses with a 404
//! (the query fails naming the source), wants a header (read from the environment);
//! and a WebSocket server.

use std::time::Duration;

use blossom_sql::observe::StreamStats;
use blossom_sql::sim::{Script, SimConfig, StreamServer, sentiment_label};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;

use crate::common::*;

fn record(id: usize) -> String {
    let mood = ["great and fast", "arrived broken", "a plain box"][id % 3];
    format!("{{\"id\": {id}, \"text\": \"order {id} {mood}\", \"sent_at\": 1.5}}")
}

async fn create(ctx: &SessionContext, location: &str, options: &str) {
    ctx.sql(&format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE) \
         STORED AS NDJSON LOCATION '{location}'{options}"
    ))
    .await
    .expect("the table is created");
}

/// The `(id, sentiment)` rows of `sql`, and how many lines the server had sent when the
/// first row came out.
async fn rows_of(
    ctx: &SessionContext,
    sql: &str,
    sent: &dyn Fn() -> usize,
) -> (Vec<(i64, String)>, Option<usize>) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut stream = execute_stream(plan, ctx.task_ctx()).unwrap();
    let mut rows = Vec::new();
    let mut sent_at_first = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        if batch.num_rows() > 0 && sent_at_first.is_none() {
            sent_at_first = Some(sent());
        }
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let labels = datafusion::arrow::compute::cast(
            batch.column(1),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let labels = labels.as_string::<i32>();
        for i in 0..ids.len() {
            rows.push((ids.value(i), labels.value(i).to_string()));
        }
    }
    (rows, sent_at_first)
}

fn expected(ids: impl Iterator<Item = usize>) -> Vec<(i64, String)> {
    ids.map(|id| {
        let text = format!(
            "order {id} {}",
            ["great and fast", "arrived broken", "a plain box"][id % 3]
        );
        (id as i64, sentiment_label(&text).to_string())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_http_stream_gives_rows_before_it_ends() {
    let sim = simulator(SimConfig::default()).await;
    let lines: Vec<String> = (0..20).map(record).collect();
    let server = StreamServer::start(vec![Script::lines(lines, Duration::from_millis(30))]).await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), "").await;
    let (rows, sent_at_first) = rows_of(
        &ctx,
        "SELECT id, sentiment(text) AS s FROM events WHERE text <> ''",
        &|| server.sent(),
    )
    .await;
    assert_eq!(rows, expected(0..20));
    let sent_at_first = sent_at_first.unwrap();
    assert!(
        sent_at_first < 20,
        "the first row came out only after all {sent_at_first} lines were sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_recorded_and_the_stream_goes_on() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut lines: Vec<String> = (0..6).map(record).collect();
    lines.insert(3, "{\"id\": \"three\", \"text\": \"x\"}".to_string());
    lines.insert(1, "this is not json".to_string());
    let server = StreamServer::start(vec![Script::lines(lines, Duration::ZERO)]).await;
    let ctx = session(&sim, &[]);
    create(
        &ctx,
        server.url(),
        &format!(" OPTIONS ('dead_letter' '{}')", dead.display()),
    )
    .await;
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| {
        server.sent()
    })
    .await;
    assert_eq!(rows, expected(0..6));
    let errors = column(
        &ctx,
        "SELECT input FROM blossom_errors() WHERE error_class = 'malformed_record' ORDER BY input",
    )
    .await
    .unwrap();
    assert_eq!(
        errors.into_iter().flatten().collect::<Vec<_>>(),
        ["this is not json", "{\"id\": \"three\", \"text\": \"x\"}"]
    );
    let dead_lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead_lines.len(), 2);
    assert_eq!(dead_lines[0]["line"], "this is not json");
    assert_eq!(dead_lines[0]["source"], server.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_made_again() {
    let sim = simulator(SimConfig::default()).await;
    let first = Script {
        cut: Some("{\"id\": 99, \"te".to_string()),
        ..Script::lines((0..5).map(record).collect(), Duration::ZERO)
    };
    let second = Script::lines((5..10).map(record).collect(), Duration::ZERO);
    let server = StreamServer::start(vec![first, second]).await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), " OPTIONS ('reconnect_initial_ms' '10')").await;
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| {
        server.sent()
    })
    .await;
    assert_eq!(rows, expected(0..10));
    assert_eq!(server.heads().len(), 2, "one reconnect");
    let stats = ctx
        .state()
        .config()
        .get_extension::<StreamStats>()
        .unwrap()
        .snapshot();
    assert_eq!(
        (stats.records_in, stats.malformed, stats.reconnects),
        (10, 1, 1)
    );
    let errors = column(&ctx, "SELECT message FROM blossom_errors()")
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .as_deref()
            .unwrap()
            .contains("cut by a disconnect")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_source_fails_the_query_naming_it() {
    let sim = simulator(SimConfig::default()).await;
    let server = StreamServer::start(vec![Script {
        status: 404,
        ..Script::lines(Vec::new(), Duration::ZERO)
    }])
    .await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), "").await;
    let error = ctx
        .sql("SELECT id FROM events")
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("a 404 fails the query");
    let message = error.to_string();
    assert!(
        message.contains(server.url()) && message.contains("404"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_come_from_the_environment_only() {
    let sim = simulator(SimConfig::default()).await;
    let server = StreamServer::start(vec![Script::lines(
        (0..2).map(record).collect(),
        Duration::ZERO,
    )])
    .await;
    let ctx = session(&sim, &[]);
    let refused = ctx
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE plain (id BIGINT) STORED AS NDJSON \
             LOCATION '{}' OPTIONS ('header.authorization' 'Bearer tok-visible')",
            server.url()
        ))
        .await
        .expect_err("a plain-text header is refused");
    assert!(refused.to_string().contains("env:VARIABLE"), "{refused}");
    assert!(!refused.to_string().contains("tok-visible"));

    // SAFETY: the variable is only read by this test's source.
    unsafe { std::env::set_var("BLOSSOM_TEST_STREAM_TOKEN", "Bearer tok-from-env") };
    create(
        &ctx,
        server.url(),
        " OPTIONS ('header.authorization' 'env:BLOSSOM_TEST_STREAM_TOKEN')",
    )
    .await;
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| {
        server.sent()
    })
    .await;
    assert_eq!(rows.len(), 2);
    let heads = server.heads();
    assert!(
        heads[0]
            .to_lowercase()
            .contains("authorization: bearer tok-from-env"),
        "{heads:?}"
    );
    let plan = physical_plan(&ctx, "SELECT id FROM events").await;
    assert!(!plan.contains("tok-from-env"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_source_gives_each_message_s_records() {
    let sim = simulator(SimConfig::default()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        use tokio_tungstenite::tungstenite::Message;
        for id in 0..6 {
            ws.send(Message::text(record(id))).await.unwrap();
        }
        // Two records in one message.
        ws.send(Message::text(format!("{}\n{}", record(6), record(7))))
            .await
            .unwrap();
        ws.close(None).await.unwrap();
    });
    let ctx = session(&sim, &[]);
    create(&ctx, &url, "").await;
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| 0).await;
    assert_eq!(rows, expected(0..8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_left_out_are_inferred_from_the_first_records_which_are_kept() {
    let sim = simulator(SimConfig::default()).await;
    // Fewer records than are sampled: the stream's end ends the sampling.
    let server = StreamServer::start(vec![Script::lines(
        (0..7).map(record).collect(),
        Duration::ZERO,
    )])
    .await;
    let ctx = session(&sim, &[]);
    ctx.sql(&format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events STORED AS NDJSON LOCATION '{}'",
        server.url()
    ))
    .await
    .expect("the columns are inferred");
    let columns = column(
        &ctx,
        "SELECT column_name || ' ' || data_type FROM information_schema.columns \
         WHERE table_name = 'events' ORDER BY column_name",
    )
    .await
    .unwrap();
    assert_eq!(
        columns.into_iter().flatten().collect::<Vec<_>>(),
        ["id Int64", "sent_at Float64", "text Utf8"]
    );
    // The first scan gets every record, those sampled included, on one connection.
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| {
        server.sent()
    })
    .await;
    assert_eq!(rows, expected(0..7));
    assert_eq!(server.heads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_through_the_model_into_a_failing_sink_loses_no_record() {
    use crate::sink::{dead_letters, ids};
    use blossom_sql::sim::{SinkServer, State};
    let sim = simulator(SimConfig::default()).await;
    let mut lines: Vec<String> = (0..200).map(record).collect();
    lines.insert(50, "{not a record".to_string());
    let source = StreamServer::start(vec![Script::lines(lines, Duration::ZERO)]).await;
    let sink = SinkServer::start(State {
        drop_connections: 2.into(),
        fail_503: 3.into(),
        refuse_marker: Some("\"id\":13,".to_string()).into(),
        ..State::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("refused.ndjson");
    let ctx = session(&sim, &[("pack_rows", "8")]);
    create(&ctx, source.url(), "").await;
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE scored (id BIGINT, s VARCHAR) STORED AS NDJSON LOCATION '{}' \
         OPTIONS ('batch_rows' '20', 'batch_ms' '50', 'retry_initial_ms' '5', \
         'dead_letter' '{}')",
        sink.url(),
        dead.display()
    ))
    .await
    .unwrap();
    let counts = column(
        &ctx,
        "INSERT INTO scored SELECT id, sentiment(text) AS s FROM events WHERE text <> ''",
    )
    .await
    .unwrap();
    // Both sides counted: every good record read is delivered or dead-lettered, once.
    let delivered = ids(&sink);
    let refused: Vec<i64> = dead_letters(&dead)
        .iter()
        .map(|d| d["record"]["id"].as_i64().unwrap())
        .collect();
    assert!(refused.contains(&13), "{refused:?}");
    let mut all: Vec<i64> = delivered.iter().chain(&refused).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<i64>>());
    assert_eq!(counts, [Some(delivered.len().to_string())]);
    let stats = ctx
        .state()
        .config()
        .get_extension::<StreamStats>()
        .unwrap()
        .snapshot();
    assert_eq!(stats.records_in, 200);
    assert_eq!(stats.malformed, 1);
    assert_eq!(stats.delivered, delivered.len() as u64);
    assert_eq!(stats.dead_lettered, refused.len() as u64);
    assert!(stats.sink_retries >= 5, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_arriving_one_by_one_wait_for_a_pack_to_fill() {
    let sim = simulator(SimConfig::default()).await;
    let server = StreamServer::start(vec![Script::lines(
        (0..40).map(record).collect(),
        Duration::from_millis(2),
    )])
    .await;
    let ctx = session(&sim, &[("pack_rows", "16"), ("pack_wait_ms", "200")]);
    create(&ctx, server.url(), "").await;
    sim.reset_stats();
    let (rows, _) = rows_of(&ctx, "SELECT id, sentiment(text) FROM events", &|| {
        server.sent()
    })
    .await;
    assert_eq!(rows, expected(0..40));
    let stats = sim.stats();
    assert_eq!(stats.questions, 40);
    assert!(
        stats.requests < 20,
        "{} requests for 40 rows arriving 2 ms apart",
        stats.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_stops_taking_rows_stops_the_source_being_read() {
    let sim = simulator(SimConfig::default()).await;
    // 20,000 records of about 2 KB: 40 MB, far more than the buffers between the
    // server and the query (the channel, the rows in flight, the sockets).
    let filler = "x".repeat(2_000);
    let total = 20_000;
    let lines: Vec<String> = (0..total)
        .map(|i| format!("{{\"id\": {i}, \"text\": \"order {i} {filler}\", \"sent_at\": 1.0}}"))
        .collect();
    let server = StreamServer::start(vec![Script::lines(lines, Duration::ZERO)]).await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), "").await;
    let plan = ctx
        .sql("SELECT id, length(text) FROM events")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut stream = execute_stream(plan, ctx.task_ctx()).unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    // The query takes no more rows for a while: the source must not be read on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_while_paused = server.sent();
    assert!(
        sent_while_paused < total / 2,
        "{sent_while_paused} of {total} lines were read while the query took none"
    );
    // Taking rows again reads on, to the end.
    let mut rows = first.num_rows();
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_sources_ends_a_stream_that_would_go_on() {
    let sim = simulator(SimConfig::default()).await;
    // A record every 50 ms for 50 s: far longer than the test.
    let server = StreamServer::start(vec![Script::lines(
        (0..1_000).map(record).collect(),
        Duration::from_millis(50),
    )])
    .await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), "").await;
    let plan = ctx
        .sql("SELECT id, sentiment(text) FROM events")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut stream = execute_stream(plan, ctx.task_ctx()).unwrap();
    let mut rows = stream.next().await.unwrap().unwrap().num_rows();
    let stats = ctx.state().config().get_extension::<StreamStats>().unwrap();
    stats.stop_sources();
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    // Every record read came out; the stream ended long before the server's.
    assert_eq!(rows as u64, stats.snapshot().records_in);
    assert!(server.sent() < 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_stream_url_are_refused() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    let error = ctx
        .sql(
            "CREATE UNBOUNDED EXTERNAL TABLE e (id BIGINT) STORED AS NDJSON \
             LOCATION 'https://user:tok-in-url@127.0.0.1:1/stream'",
        )
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("env:VARIABLE"), "{message}");
    assert!(!message.contains("tok-in-url"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_of_a_stream_on_ai_match_is_asked_pair_by_pair_as_rows_come() {
    let sim = simulator(SimConfig::default()).await;
    let server = StreamServer::start(vec![Script::lines(
        (0..3).map(record).collect(),
        Duration::ZERO,
    )])
    .await;
    let ctx = session(&sim, &[]);
    create(&ctx, server.url(), "").await;
    let sql = "SELECT e.id, r.label FROM (VALUES ('loved it, great'), ('broken, awful')) AS r(label) \
               JOIN events e ON ai_match(r.label, e.text, 'the same opinion')";
    let plan = physical_plan(&ctx, sql).await;
    assert!(!plan.contains("BlossomAiJoinExec"), "{plan}");
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Record 0 is positive, 1 negative, 2 neutral: one match each for the first two.
    assert_eq!(rows, 2);
}
