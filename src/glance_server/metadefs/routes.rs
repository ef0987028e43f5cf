//! `/v2/metadefs/...` and `/v2/schemas/metadefs/...`: which path and method does what. A
//! request's body is read before the catalogue is touched, and every change is one write.

use http::{Method, Request, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;

use super::contents::Kind;
use super::{Context, Metadefs};
use crate::glance_server::Cloud;
use crate::glance_server::CloudError;
use crate::glance_server::answer::{Answer, json_response, no_content, ok, read_json};
use crate::glance_server::caller::Caller;
use crate::glance_server::listing::Query;

/// `GET /v2/schemas/metadefs/{name}`.
pub fn schema(name: &str) -> Answer {
    super::schemas::get(name).map(|body| ok(&body))
}

/// Answers a request under `/v2/metadefs/`; `parts` are the path's segments after it.
pub async fn route(
    cloud: &Cloud,
    caller: &Caller,
    parts: &[&str],
    query: &str,
    request: Request<Incoming>,
) -> Answer {
    let method = request.method().clone();
    let append = request
        .headers()
        .get("x-openstack-append")
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_true);
    let body = if matches!(method, Method::POST | Method::PUT) {
        read_json(request).await?
    } else {
        Value::Null
    };
    let now = cloud.now();
    let context = Context {
        caller,
        now: &now,
        cloud_owner: &cloud.owner,
    };
    let read = |answer: &dyn Fn(&Metadefs) -> Result<Value, CloudError>| -> Answer {
        answer(&cloud.store.metadefs()?).map(|body| ok(&body))
    };
    let write = |status: StatusCode,
                 change: &mut dyn FnMut(&mut Metadefs) -> Result<Value, CloudError>|
     -> Answer {
        let body = cloud.store.update_metadefs(|defs| change(defs))?;
        Ok(json_response(status, &body))
    };
    let remove = |change: &mut dyn FnMut(&mut Metadefs) -> Result<(), CloudError>| -> Answer {
        cloud.store.update_metadefs(|defs| change(defs))?;
        Ok(no_content())
    };
    let query = Query::parse(query);
    match (&method, parts) {
        (&Method::GET, ["resource_types"]) => read(&|defs| Ok(defs.resource_types())),
        (&Method::GET, ["namespaces"]) => read(&|defs| defs.list(&context, &query)),
        (&Method::POST, ["namespaces"]) => {
            let mut response = write(StatusCode::CREATED, &mut |defs| {
                defs.create(&context, &body)
            })?;
            if let Some(name) = body.get("namespace").and_then(Value::as_str)
                && let Ok(location) =
                    header::HeaderValue::from_str(&format!("/v2/metadefs/namespaces/{name}"))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        (&Method::GET, ["namespaces", namespace]) => {
            read(&|defs| defs.show(&context, namespace, query.get("resource_type")))
        }
        (&Method::PUT, ["namespaces", namespace]) => write(StatusCode::OK, &mut |defs| {
            defs.update(&context, namespace, &body)
        }),
        (&Method::DELETE, ["namespaces", namespace]) => {
            remove(&mut |defs| defs.delete(&context, namespace))
        }
        (_, ["namespaces", namespace, kind, rest @ ..]) => {
            let kind = match *kind {
                "objects" => Kind::Objects,
                "properties" => Kind::Properties,
                "tags" => Kind::Tags,
                "resource_types" => Kind::ResourceTypes,
                _ => return Err(not_found(parts)),
            };
            match (&method, kind, rest) {
                (&Method::GET, _, []) => read(&|defs| defs.list_in(&context, namespace, kind)),
                (&Method::POST, _, []) => write(StatusCode::CREATED, &mut |defs| {
                    defs.create_in(&context, namespace, kind, &body, append)
                }),
                (&Method::DELETE, _, []) => {
                    remove(&mut |defs| defs.delete_all_in(&context, namespace, kind))
                }
                (&Method::GET, _, [name]) => {
                    read(&|defs| defs.show_in(&context, namespace, kind, name))
                }
                (&Method::PUT, _, [name]) => write(StatusCode::OK, &mut |defs| {
                    defs.replace_in(&context, namespace, kind, name, &body)
                }),
                (&Method::POST, Kind::Tags, [name]) => write(StatusCode::CREATED, &mut |defs| {
                    defs.add_tag(&context, namespace, name)
                }),
                (&Method::DELETE, _, [name]) => {
                    remove(&mut |defs| defs.delete_in(&context, namespace, kind, name))
                }
                (_, _, [] | [_]) => Err(method_not_allowed(&method, parts)),
                _ => Err(not_found(parts)),
            }
        }
        (_, ["resource_types"] | ["namespaces"] | ["namespaces", _]) => {
            Err(method_not_allowed(&method, parts))
        }
        _ => Err(not_found(parts)),
    }
}

/// oslo's reading of a true header value, as Glance reads `X-Openstack-Append`.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

fn not_found(parts: &[&str]) -> CloudError {
    CloudError::NotFound(format!(
        "The resource /v2/metadefs/{} could not be found.",
        parts.join("/")
    ))
}

fn method_not_allowed(method: &Method, parts: &[&str]) -> CloudError {
    CloudError::MethodNotAllowed(format!(
        "{method} is not allowed on /v2/metadefs/{}.",
        parts.join("/")
    ))
}
