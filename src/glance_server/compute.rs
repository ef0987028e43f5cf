//! The compute API's image proxy (`/v2.1/images`), read-only plus delete, as older tooling
//! still calls it: Nova's names (`minDisk`, `progress`, `metadata`) over the same records.

use http::Method;
use serde_json::{Value, json};

use super::access::visible;
use super::answer::{Answer, no_content, ok};
use super::caller::Caller;
use super::image::ImageRecord;
use super::{Cloud, CloudError, data};
use crate::vocabulary::GlanceStatus;

pub fn route(
    cloud: &Cloud,
    caller: &Caller,
    origin: &str,
    method: &Method,
    parts: &[&str],
    query: &str,
) -> Answer {
    match (method, parts) {
        (&Method::GET, ["v2.1", "images"]) => {
            list(cloud, caller, origin, query, false).map(|body| ok(&body))
        }
        (&Method::GET, ["v2.1", "images", "detail"]) => {
            list(cloud, caller, origin, query, true).map(|body| ok(&body))
        }
        (&Method::GET, ["v2.1", "images", id]) => Ok(ok(
            &json!({"image": detail(origin, &visible(cloud, caller, id)?)}),
        )),
        (&Method::DELETE, ["v2.1", "images", id]) => {
            data::delete(cloud, caller, id).map(|()| no_content())
        }
        _ => Err(CloudError::NotFound(format!(
            "The resource /{} could not be found.",
            parts.join("/")
        ))),
    }
}

/// Nova's status names: ACTIVE, SAVING, DELETED, ERROR, UNKNOWN.
fn nova_status(image: &ImageRecord) -> &'static str {
    match image.status {
        GlanceStatus::Active => "ACTIVE",
        GlanceStatus::Queued
        | GlanceStatus::Saving
        | GlanceStatus::Uploading
        | GlanceStatus::Importing => "SAVING",
        GlanceStatus::Deleted => "DELETED",
        GlanceStatus::Killed => "ERROR",
        _ => "UNKNOWN",
    }
}

fn progress(image: &ImageRecord) -> u8 {
    match image.status {
        GlanceStatus::Active => 100,
        GlanceStatus::Saving | GlanceStatus::Importing => 50,
        GlanceStatus::Queued | GlanceStatus::Uploading => 25,
        _ => 0,
    }
}

fn links(origin: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{origin}/v2.1/images/{id}")},
        {"rel": "bookmark", "href": format!("{origin}/images/{id}")},
    ])
}

fn detail(origin: &str, image: &ImageRecord) -> Value {
    json!({
        "id": image.id,
        "name": image.name,
        "status": nova_status(image),
        "progress": progress(image),
        "minDisk": image.min_disk,
        "minRam": image.min_ram,
        "created": image.created_at,
        "updated": image.updated_at,
        "metadata": image.properties,
        "OS-EXT-IMG-SIZE:size": image.size,
        "links": links(origin, &image.id),
    })
}

fn list(
    cloud: &Cloud,
    caller: &Caller,
    origin: &str,
    query: &str,
    detailed: bool,
) -> Result<Value, CloudError> {
    let query = super::listing::Query::parse(query);
    let get = |key: &str| query.get(key);
    let since = get("changes-since")
        .map(|text| {
            text.parse::<jiff::Timestamp>().map_err(|_| {
                CloudError::BadRequest(format!("changes-since {text:?} is not an ISO 8601 time"))
            })
        })
        .transpose()?;
    let limit = get("limit")
        .map(|text| {
            text.parse::<usize>()
                .map_err(|_| CloudError::BadRequest(format!("limit {text:?} is not a number")))
        })
        .transpose()?
        .unwrap_or(1000);
    let mut images: Vec<ImageRecord> = cloud
        .store
        .all()?
        .into_iter()
        // changes-since also shows deleted images, so callers can notice deletions.
        .filter(|image| since.is_some() || image.status != GlanceStatus::Deleted)
        .filter(|image| caller.lists(image, None, None))
        .filter(|image| {
            since.is_none_or(|since| {
                image
                    .updated_at
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|updated| updated >= since)
            })
        })
        .filter(|image| get("name").is_none_or(|name| image.name.as_deref() == Some(name)))
        .filter(|image| get("status").is_none_or(|wanted| nova_status(image) == wanted))
        .filter(|image| {
            get("type").is_none_or(|kind| {
                let is_snapshot =
                    image.properties.get("image_type").map(String::as_str) == Some("snapshot");
                (kind == "snapshot") == is_snapshot
            })
        })
        .collect();
    images.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let start = super::listing::after_marker(&images, get("marker"))?;
    let shown: Vec<Value> = images
        .iter()
        .skip(start)
        .take(limit)
        .map(|image| {
            if detailed {
                detail(origin, image)
            } else {
                json!({"id": image.id, "name": image.name, "links": links(origin, &image.id)})
            }
        })
        .collect();
    Ok(json!({ "images": shown }))
}
