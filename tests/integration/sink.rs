//! The HTTP sink (`blossom_sql::streaming::sink_table`) against a real HTTP server on
//! 127.0.0.1 that records every POST and fails on purpose: dropped connections, 503s,
//! 400 for bodies with a marker. Every test counts both sides: records the server
//! received plus records in the dead-letter file equal the records inserted.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blossom_sql::sim::{SinkServer, State};
use blossom_sql::streaming::sink_table;
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use hyper::StatusCode;

/// The `id` of every record `server` accepted, in the order received.
pub(crate) fn ids(server: &SinkServer) -> Vec<i64> {
    server
        .accepted()
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| id_of(l)))
        .collect()
}

fn id_of(line: &str) -> i64 {
    let value: serde_json::Value = serde_json::from_str(line).expect("an NDJSON record");
    value["id"].as_i64().expect("an id")
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn batch(ids: std::ops::Range<i64>, text: impl Fn(i64) -> String) -> RecordBatch {
    let texts: Vec<String> = ids.clone().map(&text).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(texts)),
        ],
    )
    .expect("batch")
}

fn context() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1))
}

/// A session with table `src` holding `rows` records (ids 0..rows, in batches of 250,
/// one partition, texts from `text`) and table `sink` POSTing to `url`.
fn session(
    rows: i64,
    text: impl Fn(i64) -> String,
    url: &str,
    options: &[(&str, &str)],
) -> SessionContext {
    let ctx = context();
    let batches = (0..rows)
        .step_by(250)
        .map(|start| batch(start..(start + 250).min(rows), &text))
        .collect();
    let table = MemTable::try_new(schema(), vec![batches]).expect("table");
    ctx.register_table("src", Arc::new(table)).expect("src");
    let sink = sink_table(schema(), url, &options_of(options), None).expect("sink table");
    ctx.register_table("sink", sink).expect("sink");
    ctx
}

fn options_of(options: &[(&str, &str)]) -> HashMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `INSERT INTO sink SELECT * FROM src`, returning DataFusion's `count`.
async fn insert(ctx: &SessionContext) -> Result<u64> {
    let batches = ctx
        .sql("INSERT INTO sink SELECT * FROM src")
        .await?
        .collect()
        .await?;
    Ok(batches
        .iter()
        .map(|b| b.column(0).as_primitive::<UInt64Type>())
        .map(|c| c.iter().flatten().sum::<u64>())
        .sum())
}

/// The dead-letter file's lines, parsed.
pub(crate) fn dead_letters(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a dead-letter line is JSON"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading the dead-letter file: {e}"),
    }
}

const FAST_RETRIES: [(&str, &str); 2] = [("retry_initial_ms", "5"), ("retry_max_ms", "20")];

#[tokio::test]
async fn a_healthy_sink_gets_every_record_once_in_order_in_bounded_batches() {
    let server = SinkServer::start(State::default()).await;
    let ctx = session(
        1000,
        |i| format!("text {i}"),
        &server.url(),
        &[("batch_rows", "64")],
    );
    assert_eq!(insert(&ctx).await.expect("inserts"), 1000);

    assert_eq!(ids(&server), (0..1000).collect::<Vec<_>>());
    let accepted = server.accepted();
    assert!(accepted.iter().all(|r| r.lines.len() <= 64));
    // Full batches where the input allows: 1000 records need at least 16 POSTs.
    assert!(accepted.len() >= 16, "{} POSTs", accepted.len());
    assert!(
        accepted
            .iter()
            .all(|r| r.content_type.as_deref() == Some("application/x-ndjson"))
    );
    let first: serde_json::Value = serde_json::from_str(&accepted[0].lines[0]).unwrap();
    assert_eq!(first, serde_json::json!({"id": 0, "s": "text 0"}));
}

#[tokio::test]
async fn dropped_connections_and_503s_are_retried_and_nothing_is_lost() {
    let server = SinkServer::start(State {
        drop_connections: AtomicUsize::new(3),
        fail_503: AtomicUsize::new(4),
        ..State::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let dead_text = dead.to_str().unwrap();
    let mut options = vec![("batch_rows", "100"), ("dead_letter", dead_text)];
    options.extend(FAST_RETRIES);
    let ctx = session(1000, |i| format!("text {i}"), &server.url(), &options);
    assert_eq!(insert(&ctx).await.expect("inserts"), 1000);

    assert_eq!(ids(&server), (0..1000).collect::<Vec<_>>());
    assert_eq!(dead_letters(&dead).len(), 0);
    assert_eq!(server.state.fail_503.load(Ordering::SeqCst), 0);
    assert_eq!(server.state.drop_connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn answers_429_and_408_are_retried_too() {
    for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::REQUEST_TIMEOUT] {
        let server = SinkServer::start(State {
            fail_503: AtomicUsize::new(3),
            fail_status: Some(status),
            ..State::default()
        })
        .await;
        let mut options = vec![("batch_rows", "100")];
        options.extend(FAST_RETRIES);
        let ctx = session(300, |i| format!("text {i}"), &server.url(), &options);
        assert_eq!(insert(&ctx).await.expect("inserts"), 300, "{status}");
        assert_eq!(ids(&server), (0..300).collect::<Vec<_>>(), "{status}");
        assert_eq!(
            server.state.attempts.load(Ordering::SeqCst),
            3 + 3,
            "{status}"
        );
    }
}

#[tokio::test]
async fn records_refused_with_400_go_to_the_dead_letter_file_and_the_rest_is_delivered() {
    let server = SinkServer::start(State {
        refuse_marker: Mutex::new(Some("POISON".into())),
        ..State::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let text = |i: i64| {
        if i == 120 || i == 730 {
            format!("POISON {i}")
        } else {
            format!("text {i}")
        }
    };
    let ctx = session(
        1000,
        text,
        &server.url(),
        &[
            ("batch_rows", "50"),
            ("dead_letter", dead.to_str().unwrap()),
        ],
    );
    assert_eq!(insert(&ctx).await.expect("inserts"), 900);

    let refused = dead_letters(&dead);
    let refused_ids: Vec<i64> = refused
        .iter()
        .map(|l| l["record"]["id"].as_i64().expect("the record's id"))
        .collect();
    let expected: Vec<i64> = (100..150).chain(700..750).collect();
    assert_eq!(refused_ids, expected);
    for line in &refused {
        assert_eq!(line["status"], 400, "{line}");
        assert!(line["error"].as_str().unwrap().contains("400"), "{line}");
        assert!(line["at_unix_ms"].as_u64().unwrap() > 0, "{line}");
    }
    let mut all: Vec<i64> = ids(&server).into_iter().chain(refused_ids).collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn retries_exhausted_send_the_batch_to_the_dead_letter_file() {
    let server = SinkServer::start(State {
        fail_503: AtomicUsize::new(usize::MAX),
        ..State::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let mut options = vec![
        ("batch_rows", "400"),
        ("max_retries", "2"),
        ("dead_letter", dead.to_str().unwrap()),
    ];
    options.extend(FAST_RETRIES);
    let ctx = session(1000, |i| format!("text {i}"), &server.url(), &options);
    assert_eq!(insert(&ctx).await.expect("inserts"), 0);

    let refused = dead_letters(&dead);
    assert_eq!(refused.len(), 1000);
    assert!(refused.iter().all(|l| l["status"] == 503));
    // Three batches, each tried once and retried twice.
    assert_eq!(server.state.attempts.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn a_sink_nobody_listens_on_fails_the_insert_or_fills_the_dead_letter_file() {
    // A port that was free a moment ago: connections to it are refused.
    let port = {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/sink");
    let mut options = vec![("max_retries", "1")];
    options.extend(FAST_RETRIES);

    let ctx = session(10, |i| format!("text {i}"), &url, &options);
    let error = insert(&ctx).await.expect_err("fails").to_string();
    assert!(error.contains(&url), "{error}");
    assert!(
        error.contains("10 records read were not delivered"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    options.push(("dead_letter", dead.to_str().unwrap()));
    let ctx = session(10, |i| format!("text {i}"), &url, &options);
    assert_eq!(insert(&ctx).await.expect("inserts"), 0);
    let refused = dead_letters(&dead);
    assert_eq!(refused.len(), 10);
    assert!(refused.iter().all(|l| l["status"].is_null()), "{refused:?}");
}

/// The variable the header tests read: cargo sets it for every test run, so the tests
/// need not change the environment of a multi-threaded process.
const TOKEN_VAR: &str = "CARGO_MANIFEST_DIR";

#[tokio::test]
async fn headers_come_from_the_environment_and_never_show_in_errors() {
    let secret = std::env::var(TOKEN_VAR).expect("cargo sets CARGO_MANIFEST_DIR");
    let server = SinkServer::start(State {
        refuse_marker: Mutex::new(Some("POISON".into())),
        ..State::default()
    })
    .await;
    let header = ("header.authorization", "env:CARGO_MANIFEST_DIR");
    let ctx = session(5, |i| format!("text {i}"), &server.url(), &[header]);
    assert_eq!(insert(&ctx).await.expect("inserts"), 5);
    let accepted = server.accepted();
    assert_eq!(accepted[0].authorization.as_deref(), Some(secret.as_str()));

    // The server echoes the credential in its 400 answer; the INSERT's error must not.
    let ctx = session(5, |i| format!("POISON {i}"), &server.url(), &[header]);
    let error = insert(&ctx).await.expect_err("refused").to_string();
    assert!(error.contains("400"), "{error}");
    assert!(error.contains(&server.url()), "{error}");
    assert!(
        error.contains("5 records read were not delivered"),
        "{error}"
    );
    assert!(!error.contains(&secret), "{error}");
    // Nor does the dead-letter file, nor the plan.
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.ndjson");
    let ctx = session(
        5,
        |i| format!("POISON {i}"),
        &server.url(),
        &[header, ("dead_letter", dead.to_str().unwrap())],
    );
    assert_eq!(insert(&ctx).await.expect("inserts"), 0);
    let text = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains(&secret), "{text}");
    let plan = ctx
        .sql("EXPLAIN INSERT INTO sink SELECT * FROM src")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("HttpSink"), "{plan}");
    assert!(!plan.contains(&secret), "{plan}");
}

#[tokio::test]
async fn plain_text_headers_unset_variables_and_reading_the_sink_are_refused() {
    let options = options_of(&[("header.authorization", "Bearer sk-plain-1234")]);
    let error = sink_table(schema(), "http://127.0.0.1:1/sink", &options, None)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("header.authorization"), "{error}");
    assert!(!error.contains("sk-plain-1234"), "{error}");

    let error = sink_table(
        schema(),
        "http://127.0.0.1:1/sink",
        &options_of(&[("rows", "1")]),
        None,
    )
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("'rows'") && error.contains("batch_rows"),
        "{error}"
    );

    let server = SinkServer::start(State::default()).await;
    let unset = "BLOSSOM_SINK_TEST_SURELY_UNSET_VARIABLE";
    assert!(std::env::var_os(unset).is_none());
    let value = format!("env:{unset}");
    let ctx = session(
        3,
        |i| format!("text {i}"),
        &server.url(),
        &[("header.x-token", value.as_str())],
    );
    let error = insert(&ctx).await.expect_err("fails").to_string();
    assert!(
        error.contains(unset) && error.contains("header.x-token"),
        "{error}"
    );
    assert_eq!(server.state.attempts.load(Ordering::SeqCst), 0);

    let read = async { ctx.sql("SELECT * FROM sink").await?.collect().await };
    let error = read.await.expect_err("refused").to_string();
    assert!(
        error.contains("can only be written, with INSERT INTO") && error.contains(&server.url()),
        "{error}"
    );
}

/// A partition whose batches come from a channel, one at a time, as a live source's do.
#[derive(Debug)]
struct ChannelPartition {
    schema: SchemaRef,
    batches: Mutex<Option<tokio::sync::mpsc::Receiver<RecordBatch>>>,
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.batches.lock().unwrap().take().expect("executed once");
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (Ok(batch), receiver))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

#[tokio::test]
async fn a_trickling_input_is_posted_before_it_ends() {
    let server = SinkServer::start(State::default()).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let partition = Arc::new(ChannelPartition {
        schema: schema(),
        batches: Mutex::new(Some(receiver)),
    });
    let ctx = context();
    let source = StreamingTable::try_new(schema(), vec![partition]).expect("table");
    ctx.register_table("src", Arc::new(source)).unwrap();
    let options = options_of(&[("batch_rows", "500"), ("batch_ms", "50")]);
    ctx.register_table(
        "sink",
        sink_table(schema(), &server.url(), &options, None).unwrap(),
    )
    .unwrap();

    let posted = Arc::clone(&server.state);
    let feeder = tokio::spawn(async move {
        let first_posted = posted.posted.notified();
        sender.send(batch(0..1, |i| format!("t{i}"))).await.unwrap();
        // The input has not ended: the first record must reach the server anyway.
        tokio::time::timeout(Duration::from_secs(20), first_posted)
            .await
            .expect("the first record was POSTed before the input ended");
        for i in 1..6 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sender
                .send(batch(i..i + 1, |i| format!("t{i}")))
                .await
                .unwrap();
        }
        // Dropping the sender ends the input.
    });
    assert_eq!(insert(&ctx).await.expect("inserts"), 6);
    feeder
        .await
        .expect("the feeder saw the first record arrive");

    let accepted = server.accepted();
    assert_eq!(accepted[0].lines.len(), 1, "{accepted:?}");
    assert_eq!(ids(&server), (0..6).collect::<Vec<_>>());
}

#[tokio::test]
async fn while_a_batch_is_retried_the_source_is_not_read_ahead() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let seen_during_retries = Arc::new(Mutex::new(Vec::new()));
    let (look_pulled, look_seen) = (Arc::clone(&pulled), Arc::clone(&seen_during_retries));
    let server = SinkServer::start(State {
        fail_503: AtomicUsize::new(6),
        on_503: Mutex::new(Some(Box::new(move || {
            look_seen
                .lock()
                .unwrap()
                .push(look_pulled.load(Ordering::SeqCst));
        }))),
        ..State::default()
    })
    .await;

    /// 1000 one-row batches made only when pulled, counting the pulls.
    #[derive(Debug)]
    struct CountingPartition(Arc<AtomicUsize>);
    impl PartitionStream for CountingPartition {
        fn schema(&self) -> &SchemaRef {
            static SCHEMA: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
            SCHEMA.get_or_init(schema)
        }
        fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
            let pulled = Arc::clone(&self.0);
            let stream = futures::stream::iter(0..1000i64).map(move |i| {
                pulled.fetch_add(1, Ordering::SeqCst);
                Ok(batch(i..i + 1, |i| format!("t{i}")))
            });
            Box::pin(RecordBatchStreamAdapter::new(schema(), stream))
        }
    }
    use futures::StreamExt;

    let ctx = context();
    let source = StreamingTable::try_new(schema(), vec![Arc::new(CountingPartition(pulled))])
        .expect("table");
    ctx.register_table("src", Arc::new(source)).unwrap();
    let mut options = vec![("batch_rows", "10")];
    options.extend(FAST_RETRIES);
    ctx.register_table(
        "sink",
        sink_table(schema(), &server.url(), &options_of(&options), None).unwrap(),
    )
    .unwrap();
    assert_eq!(insert(&ctx).await.expect("inserts"), 1000);

    let seen = seen_during_retries.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    // The batch being sent (10) and one batch filling (10), never the whole input.
    assert!(seen.iter().all(|&n| n <= 20), "{seen:?}");
    assert_eq!(ids(&server), (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn nulls_reach_the_sink_as_json_nulls() {
    {
        let server = SinkServer::start(State::default()).await;
        let ctx = context();
        let texts: Vec<Option<&str>> = vec![Some("a"), None];
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(texts)),
            ],
        )
        .unwrap();
        assert_eq!(batch.column(1).null_count(), 1);
        let table = MemTable::try_new(schema(), vec![vec![batch]]).unwrap();
        ctx.register_table("src", Arc::new(table)).unwrap();
        ctx.register_table(
            "sink",
            sink_table(schema(), &server.url(), &HashMap::new(), None).unwrap(),
        )
        .unwrap();
        assert_eq!(insert(&ctx).await.unwrap(), 2);
        let lines = server.accepted()[0].lines.clone();
        assert_eq!(lines, vec![r#"{"id":1,"s":"a"}"#, r#"{"id":2,"s":null}"#]);
    }
}

#[tokio::test]
async fn records_read_before_the_input_fails_are_still_delivered() {
    /// Three one-row batches, then an error, as a source that breaks off.
    #[derive(Debug)]
    struct BreakingPartition;
    impl PartitionStream for BreakingPartition {
        fn schema(&self) -> &SchemaRef {
            static SCHEMA: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
            SCHEMA.get_or_init(schema)
        }
        fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
            let batches = (0..3i64)
                .map(|i| Ok(batch(i..i + 1, |i| format!("t{i}"))))
                .chain(std::iter::once(Err(
                    datafusion::common::DataFusionError::Execution("the source broke off".into()),
                )));
            Box::pin(RecordBatchStreamAdapter::new(
                schema(),
                futures::stream::iter(batches),
            ))
        }
    }

    let server = SinkServer::start(State::default()).await;
    let ctx = context();
    let source =
        StreamingTable::try_new(schema(), vec![Arc::new(BreakingPartition)]).expect("table");
    ctx.register_table("src", Arc::new(source)).unwrap();
    ctx.register_table(
        "sink",
        sink_table(schema(), &server.url(), &HashMap::new(), None).unwrap(),
    )
    .unwrap();
    let error = insert(&ctx).await.expect_err("fails").to_string();
    assert!(error.contains("the source broke off"), "{error}");
    assert_eq!(ids(&server), vec![0, 1, 2]);
}
