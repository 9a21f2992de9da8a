//! The protocol over HTTP/REST: health, metadata, configuration, inference (JSON, with the
//! binary tensor extension) and `/metrics`.

mod body;

pub(crate) use body::{decode as decode_body, encode as encode_body};

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::error::{Kind, ServeError, ServeResult};
use super::shared::Shared;
use super::{describe, infer, metrics};

/// The routes, on the server's shared state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/metrics", get(metrics_text));
    for base in [
        "/v2/models/{model}",
        "/v2/models/{model}/versions/{version}",
    ] {
        r = r
            .route(base, get(model_metadata))
            .route(&format!("{base}/ready"), get(model_ready))
            .route(&format!("{base}/config"), get(model_config))
            .route(&format!("{base}/infer"), post(model_infer));
    }
    r.fallback(not_found).with_state(shared)
}

/// An error response: the status and `{"error": "…"}`, logged.
fn error(e: ServeError, model: Option<&str>) -> Response {
    e.log("http", model);
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, json_body(&json!({ "error": e.message }))).into_response()
}

fn json_body(v: &Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(shared): State<Arc<Shared>>) -> StatusCode {
    if shared.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn server_metadata() -> Response {
    json_body(&describe::server_metadata()).into_response()
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let text = metrics::render(shared.models());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    error(ServeError::not_found("no such route"), None)
}

/// The model (and version) a path names.
fn lookup<'a>(
    shared: &'a Shared,
    path: &HashMap<String, String>,
) -> ServeResult<&'a Arc<super::ServedModel>> {
    let name = path.get("model").map(String::as_str).unwrap_or_default();
    shared.model(name, path.get("version").map(String::as_str))
}

async fn model_metadata(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    match lookup(&shared, &path) {
        Ok(m) => json_body(&describe::model_metadata(m)).into_response(),
        Err(e) => error(e, path.get("model").map(String::as_str)),
    }
}

async fn model_config(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    match lookup(&shared, &path) {
        Ok(m) => json_body(&describe::model_config(m)).into_response(),
        Err(e) => error(e, path.get("model").map(String::as_str)),
    }
}

async fn model_ready(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    match lookup(&shared, &path) {
        Ok(_) if shared.ready() => StatusCode::OK.into_response(),
        Ok(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(e) => error(e, path.get("model").map(String::as_str)),
    }
}

async fn model_infer(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = path.get("model").cloned().unwrap_or_default();
    match run_infer(&shared, &path, &headers, body).await {
        Ok(r) => r,
        Err(e) => error(e, Some(&name)),
    }
}

async fn run_infer(
    shared: &Shared,
    path: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> ServeResult<Response> {
    let model = lookup(shared, path)?;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("?");
        if !enc.eq_ignore_ascii_case("identity") {
            return Err(ServeError::bad(format!(
                "Content-Encoding `{enc}` is not supported; send the body uncompressed"
            )));
        }
    }
    let limit = shared.max_body_bytes();
    let too_large = || {
        ServeError::new(
            Kind::TooLarge,
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            ServeError::bad(format!("the body could not be read: {e}"))
        }
    })?;
    let length =
        match headers.get(body::HEADER_LENGTH) {
            Some(v) => Some(v.to_str().map_err(|_| {
                ServeError::bad("header Inference-Header-Content-Length is not text")
            })?),
            None => None,
        };
    let request = body::decode(length, &bytes)?;
    let outputs = infer::infer(model, &request.call).await?;
    let (out, header_length) = body::encode(model.name(), &request, &outputs);
    let mut response = Response::new(Body::from(out));
    let h = response.headers_mut();
    match header_length {
        Some(n) => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(body::HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(response)
}
