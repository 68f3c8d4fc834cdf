//! HTTP request handling of the simulator: routing, and the chat-completions pipeline
//! (auth → concurrency limit → rate limit → request parsing → fault → latency → answer).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::answers::answer_for;
use super::blocks::{block_answer, block_pairs};
use super::config::SimConfig;
use super::embeddings::{EmbeddingsRequest, embeddings_body};
use super::faults::FaultKind;
use super::limiter::{ceil_secs, retry_after_secs};
use super::packed::{packed_answer, packed_items};
use super::protocol::ChatMessage;
use super::protocol::{
    ChatRequest, completion_body, error_body, estimate_tokens, models_body, prompt_tokens,
    truncate_json,
};
use super::state::SharedState;

/// The response body type of the simulator.
pub type Body = Full<Bytes>;

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by simulated fault")
    }
}

impl std::error::Error for DroppedConnection {}

/// Routes one HTTP request.
pub async fn handle(
    state: Arc<SharedState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let path = req.uri().path();
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions" | "/openai") => {
            chat(&state, req, Endpoint::Chat).await
        }
        (&Method::POST, "/v1/embeddings" | "/embeddings" | "/openai/embeddings") => {
            chat(&state, req, Endpoint::Embeddings).await
        }
        (&Method::GET, "/v1/models" | "/models") => Ok(models(&state, req.headers())),
        (&Method::GET, "/sim/stats") => Ok(match serde_json::to_string(&state.stats.snapshot()) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot serialize stats: {e}"),
                "server_error",
            ),
        }),
        (&Method::POST, "/sim/reset") => {
            state.stats.reset();
            Ok(value_response(StatusCode::OK, &json!({"ok": true})))
        }
        (method, _) => Ok(error_response(
            StatusCode::NOT_FOUND,
            &format!("no route for {method} {}", req.uri().path()),
            "not_found",
        )),
    }
}

/// `GET /v1/models`.
fn models(state: &SharedState, headers: &HeaderMap) -> Response<Body> {
    let config = state.config();
    if !authorized(&config, headers) {
        state.stats.unauthorized();
        return unauthorized();
    }
    value_response(StatusCode::OK, &models_body(&config.model))
}

/// What a POST asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
}

/// `POST /v1/chat/completions` and `POST /v1/embeddings`: both go through the same
/// authentication, limits, fault dice and latency.
async fn chat(
    state: &SharedState,
    req: Request<Incoming>,
    endpoint: Endpoint,
) -> Result<Response<Body>, DroppedConnection> {
    let _in_flight = state.stats.enter();
    let config = state.config();
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {MAX_BODY_BYTES} bytes"),
                "invalid_request_error",
            ));
        }
        Err(e) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                &format!("cannot read request body: {e}"),
                "invalid_request_error",
            ));
        }
    };

    // A careless server repeats the request's headers in whatever it answers.
    let echo = config.echo_headers.then(|| header_dump(&parts.headers));
    let echoed = |message: &str| match &echo {
        Some(headers) => format!("{message} (request headers: {headers})"),
        None => message.to_string(),
    };
    if !authorized(&config, &parts.headers) {
        state.stats.unauthorized();
        return Ok(match &echo {
            Some(_) => error_response(
                StatusCode::UNAUTHORIZED,
                &echoed("missing or invalid API key"),
                "authentication_error",
            ),
            None => unauthorized(),
        });
    }
    let Some(_slot) = state.try_admit(config.max_concurrent) else {
        state.stats.busy_rejected();
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too many concurrent requests (simulated server busy)",
            "server_busy",
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(1u64));
        return Ok(response);
    };
    if let Err(wait) = state.check_rate() {
        state.stats.rate_limited();
        let secs = retry_after_secs(wait);
        let body = json!({
            "error": {"message": "rate limit exceeded (simulated)", "type": "rate_limit"},
            "retryAfterSeconds": secs,
        });
        let mut response = value_response(StatusCode::TOO_MANY_REQUESTS, &body);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        return Ok(response);
    }
    if endpoint == Endpoint::Embeddings {
        return embeddings(state, &config, &bytes).await;
    }
    let request: ChatRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                &format!("invalid chat request: {e}"),
                "invalid_request_error",
            ));
        }
    };

    state
        .stats
        .model_requested(request.model.as_deref().unwrap_or_default());
    state.stats.key_presented(&key_label(&parts.headers));
    if request.wants_json_schema() && !config.json_schema {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "response_format of type json_schema is not supported by this model",
            "invalid_request_error",
        ));
    }
    if request.wants_json() {
        state.stats.json_requested();
    }
    let plan = state.plan();
    if let Some(kind) = plan.fault {
        state.stats.fault(kind);
        tracing::debug!(fault = kind.as_str(), "injecting simulated fault");
    }
    let answer = |content: &str, completion_tokens: u64| {
        completion_body(
            state.next_id(),
            unix_now(),
            &config.model,
            content,
            prompt_tokens(&request.messages),
            completion_tokens,
        )
    };
    match plan.fault {
        Some(FaultKind::DropConnection) => Err(DroppedConnection),
        Some(FaultKind::ServerError) => Ok(match &echo {
            Some(headers) => html_error(StatusCode::INTERNAL_SERVER_ERROR, headers),
            None => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error (simulated fault)",
                "server_error",
            ),
        }),
        Some(FaultKind::RateLimited) => Ok(injected_rate_limit(&config)),
        Some(FaultKind::PaymentRequired) => Ok(value_response(
            StatusCode::PAYMENT_REQUIRED,
            &json!({"error": {"message": echoed("insufficient credit")}}),
        )),
        Some(FaultKind::Hang) => {
            sleep(config.faults.hang_for).await;
            let content = content_for(&request.messages, &config);
            let body = answer(&content, estimate_tokens(&content));
            Ok(value_response(StatusCode::OK, &body))
        }
        Some(FaultKind::MalformedJson) => {
            sleep(plan.delay).await;
            let content = content_for(&request.messages, &config);
            let body = answer(&content, estimate_tokens(&content)).to_string();
            Ok(json_response(StatusCode::OK, truncate_json(&body)))
        }
        Some(FaultKind::EmptyContent) => {
            sleep(plan.delay).await;
            Ok(value_response(StatusCode::OK, &answer("", 0)))
        }
        None if rejects_pack(&request.messages, &config) => Ok(error_response(
            StatusCode::BAD_REQUEST,
            "the packed prompt is too long for the model",
            "context_length_exceeded",
        )),
        None => {
            let content = content_for(&request.messages, &config);
            let content = match &echo {
                Some(_) => echoed(&content),
                None => content,
            };
            let prompt = prompt_tokens(&request.messages);
            let completion = estimate_tokens(&content);
            let generation = config
                .latency_per_token
                .saturating_mul(u32::try_from(completion).unwrap_or(u32::MAX));
            sleep(plan.delay + generation).await;
            state.stats.answered(prompt, completion);
            state.stats.questions(questions_in(&request.messages));
            Ok(value_response(
                StatusCode::OK,
                &answer(&content, completion),
            ))
        }
    }
}

/// The rest of `POST /v1/embeddings`, after authentication and the limits: request
/// parsing, the fault (only the HTTP-level kinds apply), latency, vectors.
async fn embeddings(
    state: &SharedState,
    config: &SimConfig,
    bytes: &[u8],
) -> Result<Response<Body>, DroppedConnection> {
    let request: EmbeddingsRequest = match serde_json::from_slice(bytes) {
        Ok(request) => request,
        Err(e) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                &format!("invalid embeddings request: {e}"),
                "invalid_request_error",
            ));
        }
    };
    state
        .stats
        .model_requested(request.model.as_deref().unwrap_or_default());
    let plan = state.plan();
    if let Some(kind) = plan.fault {
        state.stats.fault(kind);
    }
    match plan.fault {
        Some(FaultKind::DropConnection) => return Err(DroppedConnection),
        Some(FaultKind::ServerError) => {
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error (simulated fault)",
                "server_error",
            ));
        }
        Some(FaultKind::RateLimited) => return Ok(injected_rate_limit(config)),
        _ => {}
    }
    sleep(plan.delay).await;
    let body = embeddings_body(&request, &config.model);
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap_or_default();
    state.stats.answered(tokens, 0);
    Ok(value_response(StatusCode::OK, &body))
}

/// The answer to a chat request: per item for a packed one, the matching pairs for a
/// join's block, else the single answer.
fn content_for(messages: &[ChatMessage], config: &SimConfig) -> String {
    packed_answer(messages, &config.faults, config.seed)
        .or_else(|| block_answer(messages, &config.faults, config.seed))
        .unwrap_or_else(|| answer_for(messages))
}

/// Whether a packed request is refused, at the rate of `pack_reject` (drawn from the
/// request's text, so the same pack is always refused or always answered).
fn rejects_pack(messages: &[ChatMessage], config: &SimConfig) -> bool {
    let rate = config.faults.pack_reject;
    rate > 0.0 && packed_items(messages).is_some_and(|items| items > 1) && {
        let text = messages.last().map_or("", |m| m.content.as_str());
        fastrand::Rng::with_seed(super::answers::fnv1a(text) ^ config.seed).f64() < rate
    }
}

/// How many questions a chat request asks (see [`super::stats::SimStats::questions`]).
fn questions_in(messages: &[ChatMessage]) -> u64 {
    packed_items(messages)
        .or_else(|| block_pairs(messages))
        .unwrap_or(1)
}

/// An injected `429`, with `Retry-After` in the header and/or body as configured.
fn injected_rate_limit(config: &SimConfig) -> Response<Body> {
    let faults = &config.faults;
    let mut body = error_body("rate limited (simulated fault)", "rate_limit");
    if faults.retry_after_in_body
        && let Value::Object(map) = &mut body
    {
        map.insert(
            "retryAfterSeconds".to_string(),
            json!(faults.retry_after.as_secs_f64()),
        );
    }
    let mut response = value_response(StatusCode::TOO_MANY_REQUESTS, &body);
    if faults.retry_after_in_header {
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from(ceil_secs(faults.retry_after)),
        );
    }
    response
}

/// True when no key is configured or the request carries `Authorization: Bearer <key>`.
fn authorized(config: &SimConfig, headers: &HeaderMap) -> bool {
    let Some(key) = config.api_key.as_deref() else {
        return true;
    };
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && token.trim() == key)
}

/// Which key a request presented, without showing it: its last four characters after
/// `…`, or `""` without a bearer token.
fn key_label(headers: &HeaderMap) -> String {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!("…{tail}")
    }
}

/// The request's headers as one line, values and all.
fn header_dump(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An HTML error page, as a proxy in front of a server gives, showing `headers`.
fn html_error(status: StatusCode, headers: &str) -> Response<Body> {
    let body = format!(
        "<html><head><title>{status}</title></head><body><h1>{status}</h1>\
         <pre>{headers}</pre></body></html>"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

fn unauthorized() -> Response<Body> {
    error_response(
        StatusCode::UNAUTHORIZED,
        "missing or invalid API key",
        "authentication_error",
    )
}

async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error_response(status: StatusCode, message: &str, kind: &str) -> Response<Body> {
    value_response(status, &error_body(message, kind))
}

fn value_response(status: StatusCode, body: &Value) -> Response<Body> {
    json_response(status, body.to_string())
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
