//! The HTTP face of the embedded cloud: which path and method does what, Glance's error shape,
//! and `x-openstack-request-id` on every answer. Image data is in [`super::data`].

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::access::{change_image, change_visible, visible};
use super::answer::{Answer, Body, accepted, json_response, no_content, ok, read_json};
use super::caller::Caller;
use super::image::{ImageRecord, MemberRecord};
use super::{Cloud, CloudError, Gate, data, listing, schemas};
use crate::vocabulary::{GlanceStatus, Visibility};

pub const PATCH_MEDIA_TYPE: &str = "application/openstack-images-v2.1-json-patch";
/// The older patch dialect Glance still takes: `{"replace": "/name", "value": ...}`.
pub const PATCH_V20_MEDIA_TYPE: &str = "application/openstack-images-v2.0-json-patch";

/// Rewrites v2.0 patch operations (`{"add": "/path", "value": v}`) as v2.1's RFC 6902 ones
/// (`{"op": "add", "path": "/path", "value": v}`); the rules after that are the same.
fn operations_of_v20(operations: &Value) -> Result<Value, CloudError> {
    let operations = operations.as_array().ok_or_else(|| {
        CloudError::BadRequest("A JSON patch must be a list of operations.".into())
    })?;
    operations
        .iter()
        .map(|operation| {
            let found = ["add", "replace", "remove"]
                .into_iter()
                .find_map(|op| Some((op, operation.get(op)?.as_str()?)));
            let (op, path) = found.ok_or_else(|| {
                CloudError::BadRequest(format!(
                    "Operation {operation} names no add, replace or remove path."
                ))
            })?;
            let mut rewritten = json!({"op": op, "path": path});
            if let Some(value) = operation.get("value") {
                rewritten["value"] = value.clone();
            }
            Ok(rewritten)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// Answers one request; never fails (failures become Glance-shaped error answers).
pub async fn handle(
    cloud: Arc<Cloud>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let answer = match identify(&cloud, &request, &path).await {
        Ok(caller) => route(&cloud, request, &caller, &request_id).await,
        Err(err) => Err(err),
    };
    let mut response = answer.unwrap_or_else(|err| {
        if err.is_transient() {
            tracing::warn!(%method, %path, error = %err, "embedded cloud request failed");
        }
        json_response(err.status(), &err.body())
    });
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    Ok(response)
}

/// Who is asking, or why they may not ask at all. The version document is open to everyone,
/// as in Glance.
async fn identify(
    cloud: &Cloud,
    request: &Request<Incoming>,
    path: &str,
) -> Result<Caller, CloudError> {
    let given = request
        .headers()
        .get("x-auth-token")
        .and_then(|value| value.to_str().ok());
    let open_path = matches!(path, "/" | "/versions");
    match &cloud.gate {
        Gate::Open => Ok(Caller::from_headers(request.headers())),
        Gate::Token(token) if open_path || given == Some(token.as_str()) => {
            Ok(Caller::from_headers(request.headers()))
        }
        Gate::Token(_) => Err(CloudError::Unauthorized(
            "This cloud needs the token it was started with, in X-Auth-Token.".into(),
        )),
        Gate::Keystone(_) if open_path => Ok(Caller::identified(None, None, &[])),
        Gate::Keystone(keystone) => keystone.caller(given).await,
    }
}

async fn route(
    cloud: &Arc<Cloud>,
    request: Request<Incoming>,
    caller: &Caller,
    request_id: &str,
) -> Answer {
    // Links point where the client reached the cloud (not 0.0.0.0 when it listens on all).
    let origin = match request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => format!("http://{}", cloud.address),
    };
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    // Decoded before it is split, as Glance's WSGI server does: a %2F in a tag is a `/`, so
    // the per-tag path does not match such a tag there either (set it with a patch of /tags).
    // `+` and `&` stay themselves in a path: those are query-string rules.
    let decoded = percent_encoding::percent_decode_str(&path)
        .decode_utf8_lossy()
        .into_owned();
    let parts: Vec<&str> = decoded
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, [] | ["versions"]) => Ok(versions(&origin)),
        (&Method::GET, ["v2", "schemas", name]) => schemas::get(name).map(|body| ok(&body)),
        (&Method::GET, ["v2", "schemas", "metadefs", name]) => super::metadefs::routes::schema(name),
        (_, ["v2", "metadefs", rest @ ..]) => {
            super::metadefs::routes::route(cloud, caller, rest, &query, request).await
        }
        (&Method::GET, ["v2", "info", "import"]) => Ok(ok(&json!({"import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ["glance-direct", "web-download"],
        }}))),
        (&Method::GET, ["v2", "info", "stores"]) => Ok(ok(&json!({"stores": [
            {"id": super::STORE_ID, "description": "Files in the cloud's data folder", "default": true}
        ]}))),
        (&Method::GET, ["v2", "tasks"]) => Ok(ok(&json!({
            "tasks": visible_tasks(cloud, caller)?,
            "schema": "/v2/schemas/tasks",
        }))),
        // The tasks API's own imports (deprecated in Glance for the image import API) are not
        // run here; Glance refuses what it cannot import at create time too.
        (&Method::POST, ["v2", "tasks"]) => Err(CloudError::BadRequest(
            "glint cloud does not run tasks created through /v2/tasks: import with POST /v2/images/{id}/import (glance-direct or web-download)".into(),
        )),
        (&Method::GET, ["v2", "tasks", id]) => visible_tasks(cloud, caller)?
            .into_iter()
            .find(|task| task["id"] == *id)
            .map(|task| ok(&task))
            .ok_or_else(|| CloudError::NotFound(format!("Task with identifier {id} not found"))),
        // `/v2/images/` names an image with an empty id, as in Glance: there is none.
        (&Method::GET, ["v2", "images"]) if request.uri().path().ends_with('/') => {
            Err(super::access::not_found(""))
        }
        (&Method::GET, ["v2", "images"]) => {
            listing::page(cloud.store.all()?, &query, caller).map(|body| ok(&body))
        }
        (&Method::POST, ["v2", "images"]) => create(cloud, caller, request).await,
        (_, ["v2", "images", id, rest @ ..]) => {
            let id = id.to_string();
            let rest: Vec<String> = rest.iter().map(|part| part.to_string()).collect();
            image_route(cloud, caller, &method, &id, &rest, request, request_id).await
        }
        // The openstack CLI resolves a project named in `image add project` through the
        // identity API, which an endpoint override sends here. The embedded cloud has no
        // identity service: any project id is a project, named by its id.
        (&Method::GET, ["v2", "tenants", project]) => Ok(ok(&json!({"tenant": {
            "id": project, "name": project, "enabled": true, "description": "",
        }}))),
        (_, ["v2.1", "images", ..]) => {
            super::compute::route(cloud, caller, &origin, &method, &parts, &query)
        }
        _ => Err(CloudError::NotFound(format!(
            "The resource {path} could not be found."
        ))),
    }
}

async fn image_route(
    cloud: &Arc<Cloud>,
    caller: &Caller,
    method: &Method,
    id: &str,
    rest: &[String],
    request: Request<Incoming>,
    request_id: &str,
) -> Answer {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (method, rest.as_slice()) {
        (&Method::GET, []) => Ok(ok(&visible(cloud, caller, id)?.to_json())),
        (&Method::PATCH, []) => patch(cloud, caller, id, request).await,
        (&Method::DELETE, []) => data::delete(cloud, caller, id).map(|()| no_content()),
        (&Method::PUT, ["file"]) => data::upload(cloud, caller, id, request).await,
        (&Method::GET, ["file"]) => data::download(cloud, caller, id).await,
        (&Method::PUT, ["stage"]) => data::stage(cloud, caller, id, request).await,
        (&Method::POST, ["import"]) => {
            let body = read_json(request).await?;
            data::import(cloud, caller, id, &body, request_id).map(|()| accepted())
        }
        (&Method::GET, ["tasks"]) => {
            visible(cloud, caller, id)?;
            Ok(ok(&json!({"tasks": cloud.store.tasks(id)?})))
        }
        (&Method::POST, ["actions", action]) => {
            set_active(cloud, caller, id, action).map(|()| no_content())
        }
        (&Method::PUT, ["tags", tag]) => {
            change_tags(cloud, caller, id, tag, true).map(|()| no_content())
        }
        (&Method::DELETE, ["tags", tag]) => {
            change_tags(cloud, caller, id, tag, false).map(|()| no_content())
        }
        (&Method::GET, ["members"]) => {
            let image = visible(cloud, caller, id)?;
            image.require_shared()?;
            let members: Vec<Value> = image.members.iter().map(|m| member_json(id, m)).collect();
            Ok(ok(
                &json!({"members": members, "schema": "/v2/schemas/members"}),
            ))
        }
        (&Method::POST, ["members"]) => {
            let body = read_json(request).await?;
            add_member(cloud, caller, id, &body).map(|member| ok(&member))
        }
        (&Method::GET, ["members", member]) => {
            let image = visible(cloud, caller, id)?;
            image.require_shared()?;
            let found = image
                .members
                .iter()
                .find(|known| known.member_id == *member);
            found
                .map(|known| ok(&member_json(id, known)))
                .ok_or_else(|| not_a_member(id, member))
        }
        (&Method::PUT, ["members", member]) => {
            let body = read_json(request).await?;
            set_member_status(cloud, caller, id, member, &body).map(|member| ok(&member))
        }
        (&Method::DELETE, ["members", member]) => {
            remove_member(cloud, caller, id, member).map(|()| no_content())
        }
        (_, [] | ["file" | "stage" | "import" | "tasks" | "members"])
        | (_, ["actions" | "tags" | "members", _]) => Err(CloudError::MethodNotAllowed(format!(
            "{method} is not allowed on /v2/images/{id}/{}",
            rest.join("/")
        ))),
        _ => Err(CloudError::NotFound(format!(
            "The resource /v2/images/{id}/{} could not be found.",
            rest.join("/")
        ))),
    }
}

/// The image, unless it does not exist or was deleted.
/// The import tasks of the images the caller owns (all of them for an administrator).
fn visible_tasks(cloud: &Cloud, caller: &Caller) -> Result<Vec<Value>, CloudError> {
    let tasks = cloud.store.all_tasks()?;
    Ok(tasks
        .into_iter()
        .filter(|task| caller.admin || task["owner"].as_str() == caller.project.as_deref())
        .collect())
}

async fn create(cloud: &Arc<Cloud>, caller: &Caller, request: Request<Incoming>) -> Answer {
    let mut body = read_json(request).await?;
    let asked_owner = body
        .as_object_mut()
        .and_then(|fields| fields.remove("owner"));
    let image = ImageRecord::create(
        &body,
        &caller.owner_of_new_image(asked_owner.as_ref(), &cloud.owner)?,
        &cloud.now(),
        &cloud.formats,
    )?;
    caller.require_may_publicize(&image)?;
    let created = cloud.store.update(&image.id, |existing| match existing {
        Some(_) => Err(CloudError::Conflict(format!(
            "Image with identifier {} already exists!",
            image.id
        ))),
        None => Ok(Some(image.clone())),
    })?;
    let created = created.ok_or_else(|| CloudError::storage("the create was not stored"))?;
    Ok(json_response(StatusCode::CREATED, &created.to_json()))
}

async fn patch(
    cloud: &Arc<Cloud>,
    caller: &Caller,
    id: &str,
    request: Request<Incoming>,
) -> Answer {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let draft = if content_type.starts_with(PATCH_MEDIA_TYPE) {
        false
    } else if content_type.starts_with(PATCH_V20_MEDIA_TYPE) {
        true
    } else {
        return Err(CloudError::UnsupportedMediaType(format!(
            "Unsupported Content-Type {content_type:?}: a PATCH needs {PATCH_MEDIA_TYPE} (or {PATCH_V20_MEDIA_TYPE})"
        )));
    };
    let operations = read_json(request).await?;
    let operations = if draft {
        operations_of_v20(&operations)?
    } else {
        operations
    };
    let now = cloud.now();
    let patched = change_image(cloud, caller, id, |image| {
        let patched = image.patch(&operations, &now, &cloud.formats, caller.admin)?;
        if image.visibility != Visibility::Public {
            caller.require_may_publicize(&patched)?;
        }
        Ok(patched)
    })?;
    Ok(ok(&patched.to_json()))
}

fn set_active(cloud: &Cloud, caller: &Caller, id: &str, action: &str) -> Result<(), CloudError> {
    let (from, to) = match action {
        "deactivate" => (GlanceStatus::Active, GlanceStatus::Deactivated),
        "reactivate" => (GlanceStatus::Deactivated, GlanceStatus::Active),
        other => {
            return Err(CloudError::NotFound(format!(
                "No action {other:?}: use deactivate or reactivate"
            )));
        }
    };
    let now = cloud.now();
    change_image(cloud, caller, id, |mut image| {
        if image.status == from {
            image.status = to;
            image.updated_at = now;
            Ok(image)
        } else if image.status == to {
            Ok(image)
        } else {
            Err(CloudError::Forbidden(format!(
                "Not allowed to {action} image in status '{}'",
                image.status
            )))
        }
    })
    .map(drop)
}

fn change_tags(
    cloud: &Cloud,
    caller: &Caller,
    id: &str,
    tag: &str,
    add: bool,
) -> Result<(), CloudError> {
    if tag.chars().count() > 255 {
        return Err(CloudError::BadRequest(
            "A tag is at most 255 characters.".into(),
        ));
    }
    let now = cloud.now();
    change_image(cloud, caller, id, |mut image| {
        let present = image.tags.iter().any(|known| known == tag);
        match (add, present) {
            (true, false) => image.tags.push(tag.to_string()),
            (false, true) => image.tags.retain(|known| known != tag),
            (true, true) => return Ok(image),
            (false, false) => {
                return Err(CloudError::NotFound(format!("Tag {tag} not found")));
            }
        }
        image.updated_at = now;
        Ok(image)
    })
    .map(drop)
}

fn member_json(image_id: &str, member: &MemberRecord) -> Value {
    json!({
        "image_id": image_id,
        "member_id": member.member_id,
        "status": member.status,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
        "schema": "/v2/schemas/member",
    })
}

fn not_a_member(id: &str, member: &str) -> CloudError {
    CloudError::NotFound(format!("{member} is not a member of image {id}"))
}

fn add_member(cloud: &Cloud, caller: &Caller, id: &str, body: &Value) -> Result<Value, CloudError> {
    let member = body["member"]
        .as_str()
        .filter(|member| !member.is_empty() && member.len() <= 255)
        .ok_or_else(|| CloudError::BadRequest("The body needs a \"member\": a project id.".into()))?
        .to_string();
    let now = cloud.now();
    let image = change_image(cloud, caller, id, |mut image| {
        image.require_shared()?;
        if image.members.iter().any(|known| known.member_id == member) {
            return Err(CloudError::Conflict(format!(
                "{member} is already a member of image {id}"
            )));
        }
        image.members.push(MemberRecord {
            member_id: member.clone(),
            status: "pending".into(),
            created_at: now.clone(),
            updated_at: now,
        });
        Ok(image)
    })?;
    let added = image.members.iter().find(|known| known.member_id == member);
    added
        .map(|known| member_json(id, known))
        .ok_or_else(|| CloudError::storage("the member was not stored"))
}

/// Only the member project (or an administrator) accepts or rejects a share, as in Glance.
fn set_member_status(
    cloud: &Cloud,
    caller: &Caller,
    id: &str,
    member: &str,
    body: &Value,
) -> Result<Value, CloudError> {
    let wanted = body["status"]
        .as_str()
        .filter(|wanted| matches!(*wanted, "pending" | "accepted" | "rejected"))
        .ok_or_else(|| {
            CloudError::BadRequest("status must be pending, accepted or rejected".into())
        })?
        .to_string();
    let now = cloud.now();
    let image = change_visible(cloud, caller, id, |mut image| {
        image.require_shared()?;
        if !caller.admin && caller.project.as_deref() != Some(member) {
            return Err(CloudError::Forbidden(format!(
                "Only project {member} can accept or reject its share of image {id}."
            )));
        }
        let known = image
            .members
            .iter_mut()
            .find(|known| known.member_id == member)
            .ok_or_else(|| not_a_member(id, member))?;
        known.status = wanted;
        known.updated_at = now;
        Ok(image)
    })?;
    let changed = image.members.iter().find(|known| known.member_id == member);
    changed
        .map(|known| member_json(id, known))
        .ok_or_else(|| not_a_member(id, member))
}

fn remove_member(cloud: &Cloud, caller: &Caller, id: &str, member: &str) -> Result<(), CloudError> {
    change_image(cloud, caller, id, |mut image| {
        image.require_shared()?;
        let before = image.members.len();
        image.members.retain(|known| known.member_id != member);
        if image.members.len() == before {
            return Err(not_a_member(id, member));
        }
        Ok(image)
    })
    .map(drop)
}

fn versions(origin: &str) -> Response<Body> {
    let root = format!("{origin}/v2/");
    let entries: Vec<Value> = (0..=17)
        .rev()
        .map(|minor| {
            json!({
                "id": format!("v2.{minor}"),
                "status": if minor == 17 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": root}],
            })
        })
        .collect();
    json_response(StatusCode::MULTIPLE_CHOICES, &json!({"versions": entries}))
}
