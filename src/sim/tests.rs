//! End-to-end tests of the simulator: start a real server and talk HTTP to it with reqwest.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn chat_body(system: Option<&str>, user: &str) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": user}));
    json!({"model": "whatever", "messages": messages, "temperature": 0, "max_tokens": 20})
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn post(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", sim.base_url()))
        .json(body)
        .send()
        .await
        .expect("request")
}

fn faulty(faults: FaultConfig) -> SimConfig {
    SimConfig {
        faults,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_roundtrip_and_routes() {
    let sim = Simulator::start(SimConfig::default()).await.expect("start");
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(sim.base_url().ends_with("/v1"));

    let text = "Great product, fast shipping, love it — ünïcødé 🌸";
    let body = chat_body(Some("Classify the sentiment"), text);
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    let expected = answer_for(&[
        ChatMessage::system("Classify the sentiment"),
        ChatMessage::user(text),
    ]);
    assert_eq!(v["choices"][0]["message"]["content"], expected.as_str());
    assert_eq!(sentiment_label(text), "POSITIVE");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "blossom-sim");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(
        v["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("simcmpl-"))
    );
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap_or(0)
                + usage["completion_tokens"].as_u64().unwrap_or(0)
        )
    );

    let http = client();
    let origin = format!("http://{}", sim.addr());
    for path in ["/chat/completions", "/openai", "/v1/chat/completions/"] {
        let resp = http
            .post(format!("{origin}{path}"))
            .json(&chat_body(None, "hello"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{path}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "[simulated] Answer to: hello"
        );
    }

    let models: Value = http
        .get(format!("{}/models", sim.base_url()))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(
        models,
        json!({"object": "list", "data": [{"id": "blossom-sim", "object": "model", "owned_by": "blossom-sim"}]})
    );

    let resp = http
        .get(format!("{origin}/nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(resp.status(), 404);
    assert!(resp.json::<Value>().await.expect("json")["error"]["message"].is_string());
    let resp = http
        .get(format!("{origin}/v1/chat/completions"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);

    let stats = sim.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.answered, 4);
    assert_eq!(stats.in_flight, 0);
    assert!(stats.prompt_tokens > 0 && stats.completion_tokens > 0);
    let served: SimStats = http
        .get(format!("{origin}/sim/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(served, stats);
    let resp = http
        .post(format!("{origin}/sim/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.stats(), SimStats::default());
    sim.reset_stats();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400() {
    let sim = Simulator::start(SimConfig::default()).await.expect("start");
    let http = client();
    let url = format!("{}/chat/completions", sim.base_url());
    for body in [
        "{not json",
        r#"{"model":"x"}"#,
        "",
        r#"{"messages":[{"role":"user","content":{"a":1}}]}"#,
    ] {
        let resp = http.post(&url).body(body).send().await.expect("request");
        let status = resp.status();
        let v: Value = resp.json().await.expect("json error body");
        if body.contains("\"a\":1") {
            // An object content without "text" is tolerated as empty text.
            assert_eq!(status, 200);
        } else {
            assert_eq!(status, 400, "{body}");
            assert!(v["error"]["message"].is_string());
        }
    }
    assert_eq!(sim.stats().answered, 1);
    assert_eq!(sim.stats().requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_enforced() {
    let config = SimConfig {
        api_key: Some("sekret".into()),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.expect("start");
    let http = client();
    let url = format!("{}/chat/completions", sim.base_url());
    let body = chat_body(None, "hi");
    let resp = http.post(&url).json(&body).send().await.expect("request");
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(&url)
        .bearer_auth("sekret")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let stats = sim.stats();
    assert_eq!(
        (stats.requests, stats.unauthorized, stats.answered),
        (3, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_faults_makes_only_the_first_request_fail() {
    let sim = Simulator::start(faulty(FaultConfig {
        server_error: 1.0,
        max_faults: Some(1),
        ..FaultConfig::default()
    }))
    .await
    .expect("start");
    let body = chat_body(None, "x");
    let first = post(&sim, &body).await;
    assert_eq!(first.status(), 500);
    assert!(first.json::<Value>().await.expect("json")["error"]["message"].is_string());
    for _ in 0..3 {
        assert_eq!(post(&sim, &body).await.status(), 200);
    }
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.answered, stats.faults), (4, 3, 1));
    assert_eq!(stats.faults_by_kind.get("server_error"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_have_their_shapes() {
    let sim = Simulator::start(faulty(FaultConfig {
        rate_limited: 1.0,
        retry_after: Duration::from_millis(1500),
        ..FaultConfig::default()
    }))
    .await
    .expect("start");
    let body = chat_body(None, "x");
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["retryAfterSeconds"].as_f64(), Some(1.5));

    sim.set_config(faulty(FaultConfig {
        rate_limited: 1.0,
        retry_after_in_header: false,
        retry_after_in_body: false,
        ..FaultConfig::default()
    }));
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    assert!(
        resp.json::<Value>()
            .await
            .expect("json")
            .get("retryAfterSeconds")
            .is_none()
    );

    sim.set_config(faulty(FaultConfig {
        payment_required: 1.0,
        ..FaultConfig::default()
    }));
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 402);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"error": {"message": "insufficient credit"}})
    );

    sim.set_config(faulty(FaultConfig {
        malformed_json: 1.0,
        ..FaultConfig::default()
    }));
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    sim.set_config(faulty(FaultConfig {
        empty_content: 1.0,
        ..FaultConfig::default()
    }));
    let v: Value = post(&sim, &body).await.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "");

    sim.set_config(faulty(FaultConfig {
        drop_connection: 1.0,
        max_faults: Some(1),
        ..FaultConfig::default()
    }));
    let http = client();
    let url = format!("{}/chat/completions", sim.base_url());
    let err = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect_err("dropped");
    assert!(!err.is_timeout(), "{err}");
    let resp = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("second succeeds");
    assert_eq!(resp.status(), 200);

    let stats = sim.stats();
    assert_eq!(stats.faults, 6);
    assert_eq!(stats.answered, 1);
    for kind in [
        "rate_limited",
        "payment_required",
        "malformed_json",
        "empty_content",
        "drop_connection",
    ] {
        assert!(stats.faults_by_kind.contains_key(kind), "{kind}");
    }
    assert_eq!(stats.faults_by_kind.get("rate_limited"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_outlasts_client_timeout() {
    let sim = Simulator::start(faulty(FaultConfig {
        hang: 1.0,
        hang_for: Duration::from_secs(20),
        ..FaultConfig::default()
    }))
    .await
    .expect("start");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = http
        .post(format!("{}/chat/completions", sim.base_url()))
        .json(&chat_body(None, "x"))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(sim.stats().faults_by_kind.get("hang"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_rate_limiter_rejects_excess() {
    let sim = Simulator::start(SimConfig {
        requests_per_minute: Some(60),
        rate_burst: 2,
        ..SimConfig::default()
    })
    .await
    .expect("start");
    let body = chat_body(None, "x");
    assert_eq!(post(&sim, &body).await.status(), 200);
    assert_eq!(post(&sim, &body).await.status(), 200);
    let resp = post(&sim, &body).await;
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("integer seconds");
    assert!((1..=2).contains(&secs), "{secs}");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "rate_limit");
    assert_eq!(v["retryAfterSeconds"].as_u64(), Some(secs));
    let stats = sim.stats();
    assert_eq!(
        (stats.requests, stats.answered, stats.rate_limited),
        (3, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_and_peak() {
    let sim = Simulator::start(SimConfig {
        latency: Duration::from_millis(1500),
        max_concurrent: Some(2),
        ..SimConfig::default()
    })
    .await
    .expect("start");
    let body = chat_body(None, "x");
    let responses = futures_join(&sim, &body, 6).await;
    let ok = responses.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<_> = responses.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(ok, 2, "{responses:?}");
    assert_eq!(busy.len(), 4, "{responses:?}");
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")));
    let stats = sim.stats();
    assert_eq!(
        (stats.busy_rejected, stats.answered, stats.in_flight),
        (4, 2, 0)
    );
    assert!(stats.peak_in_flight >= 2 && stats.peak_in_flight <= 6);

    // Without a limit every request overlaps with the others during the latency.
    sim.set_config(SimConfig {
        latency: Duration::from_millis(1500),
        ..SimConfig::default()
    });
    sim.reset_stats();
    let started = Instant::now();
    let responses = futures_join(&sim, &body, 8).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(responses.iter().all(|(s, _)| *s == 200));
    let stats = sim.stats();
    assert_eq!(stats.peak_in_flight, 8);
    assert_eq!(stats.answered, 8);
}

/// Sends `n` requests at once; returns their statuses and Retry-After headers.
async fn futures_join(sim: &Simulator, body: &Value, n: usize) -> Vec<(u16, Option<String>)> {
    let http = client();
    let url = format!("{}/chat/completions", sim.base_url());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = http.post(&url).json(body);
            tokio::spawn(async move {
                let resp = request.send().await.expect("request");
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (resp.status().as_u16(), retry)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_set_config_and_shutdown() {
    let sim = Simulator::start(SimConfig::default()).await.expect("start");
    let http = client();
    let url = format!("{}/chat/completions", sim.base_url());
    for i in 0..50 {
        let resp = http
            .post(&url)
            .json(&chat_body(Some("enhance"), &format!("  text   {i} ")))
            .send()
            .await
            .expect("request");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("[simulated] Enhanced: Text {i}.")
        );
    }
    sim.set_config(SimConfig {
        model: "other".into(),
        ..SimConfig::default()
    });
    let v: Value = http
        .post(&url)
        .json(&chat_body(None, "x"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(v["model"], "other");
    // Invalid configurations are ignored.
    sim.set_config(faulty(FaultConfig {
        hang: 2.0,
        ..FaultConfig::default()
    }));
    assert_eq!(sim.config().model, "other");

    let addr = sim.addr();
    sim.shutdown();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "server still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_invalid_config() {
    let sim = Simulator::start(SimConfig {
        latency: Duration::from_millis(150),
        ..SimConfig::default()
    })
    .await
    .expect("start");
    let started = Instant::now();
    assert_eq!(post(&sim, &chat_body(None, "x")).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let err = Simulator::start(faulty(FaultConfig {
        server_error: -1.0,
        ..FaultConfig::default()
    }))
    .await
    .expect_err("invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
