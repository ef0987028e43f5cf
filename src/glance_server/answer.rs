//! The embedded cloud's answers: the body type every route returns and the JSON and empty
//! responses Glance sends, and reading a request's JSON body.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::Value;

use super::CloudError;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Answer = Result<Response<Body>, CloudError>;

/// Largest JSON body a metadata call accepts.
const MAX_JSON_BODY: usize = 1 << 20;

pub async fn read_json(request: Request<Incoming>) -> Result<Value, CloudError> {
    let bytes = Limited::new(request.into_body(), MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|err| CloudError::RequestTooLarge(format!("Cannot read the body: {err}")))?
        .to_bytes();
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| CloudError::BadRequest(format!("The body is not valid JSON: {err}")))
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

pub fn ok(body: &Value) -> Response<Body> {
    json_response(StatusCode::OK, body)
}

pub fn no_content() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

pub fn accepted() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
