//! `GET /v2/images`: Glance's filters, sort keys and marker paging over the stored records.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::CloudError;
use super::image::{ImageRecord, status};

const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;

/// Parameters that are not property filters.
const RESERVED: &[&str] = &[
    "limit",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "name",
    "status",
    "visibility",
    "owner",
    "tag",
    "member_status",
    "protected",
    "os_hidden",
    "size_min",
    "size_max",
    "id",
    "created_at",
    "updated_at",
];

/// Fields compared as numbers when sorting.
const NUMERIC: &[&str] = &["size", "virtual_size", "min_ram", "min_disk"];

/// One page of a listing, rendered as Glance's body.
pub fn page(images: Vec<ImageRecord>, query: &str) -> Result<Value, CloudError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| CloudError::BadRequest(format!("limit {text:?} is not a number")))?
            .min(MAX_LIMIT),
    };
    let sort = sort_keys(&pairs)?;
    let mut selected = Vec::new();
    for image in images {
        if image.status != status::DELETED && matches(&image, &pairs)? {
            selected.push(image);
        }
    }
    selected.sort_by(|a, b| compare(a, b, &sort));
    let start = match get("marker") {
        None => 0,
        Some(marker) => {
            selected
                .iter()
                .position(|image| image.id == marker)
                .ok_or_else(|| {
                    CloudError::BadRequest(format!("marker {marker} could not be found"))
                })?
                + 1
        }
    };
    let shown: Vec<&ImageRecord> = selected.iter().skip(start).take(limit).collect();
    let mut body = json!({
        "images": shown.iter().map(|image| image.to_json()).collect::<Vec<_>>(),
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if let (Some(last), true) = (shown.last(), shown.len() == limit && limit > 0) {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs.iter().filter(|(key, _)| key != "marker") {
            next.append_pair(key, value);
        }
        next.append_pair("marker", &last.id);
        body["next"] = Value::String(format!("/v2/images?{}", next.finish()));
    }
    Ok(body)
}

fn sort_keys(pairs: &[(String, String)]) -> Result<Vec<(String, bool)>, CloudError> {
    let mut keys = Vec::new();
    for (name, value) in pairs {
        if name == "sort" {
            for part in value.split(',').filter(|part| !part.is_empty()) {
                let (key, direction) = part.split_once(':').unwrap_or((part, "desc"));
                keys.push((key.trim().to_string(), descending(direction)?));
            }
        }
    }
    let plain_keys: Vec<&String> = pairs
        .iter()
        .filter(|(name, _)| name == "sort_key")
        .map(|(_, value)| value)
        .collect();
    let plain_dirs: Vec<&String> = pairs
        .iter()
        .filter(|(name, _)| name == "sort_dir")
        .map(|(_, value)| value)
        .collect();
    for (index, key) in plain_keys.iter().enumerate() {
        let direction = plain_dirs
            .get(index)
            .or(plain_dirs.first())
            .map(|dir| dir.as_str())
            .unwrap_or("desc");
        keys.push((key.to_string(), descending(direction)?));
    }
    if keys.is_empty() {
        keys.push(("created_at".into(), true));
    }
    // Glance always ends with the id, so pages are stable when other keys tie.
    if !keys.iter().any(|(key, _)| key == "id") {
        let last_direction = keys.last().map(|(_, desc)| *desc).unwrap_or(true);
        keys.push(("id".into(), last_direction));
    }
    Ok(keys)
}

fn descending(direction: &str) -> Result<bool, CloudError> {
    match direction.trim() {
        "asc" => Ok(false),
        "desc" => Ok(true),
        other => Err(CloudError::BadRequest(format!(
            "Invalid sort direction {other:?}: use asc or desc"
        ))),
    }
}

fn compare(a: &ImageRecord, b: &ImageRecord, keys: &[(String, bool)]) -> Ordering {
    for (key, descending) in keys {
        let (left, right) = (a.field(key), b.field(key));
        let order = if NUMERIC.contains(&key.as_str()) {
            let number = |value: Option<String>| value.and_then(|text| text.parse::<u64>().ok());
            number(left).cmp(&number(right))
        } else {
            left.cmp(&right)
        };
        let order = if *descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn matches(image: &ImageRecord, pairs: &[(String, String)]) -> Result<bool, CloudError> {
    let hidden_wanted = pairs
        .iter()
        .find(|(key, _)| key == "os_hidden")
        .map(|(_, value)| value == "true")
        .unwrap_or(false);
    if image.os_hidden != hidden_wanted {
        return Ok(false);
    }
    for (key, value) in pairs {
        let keep = match key.as_str() {
            "limit" | "marker" | "sort" | "sort_key" | "sort_dir" | "os_hidden" => true,
            "name" | "id" | "status" | "owner" | "disk_format" | "container_format" => {
                any_of(value)
                    .iter()
                    .any(|wanted| image.field(key).as_deref() == Some(wanted))
            }
            "visibility" => value == "all" || image.visibility == *value,
            "tag" => image.tags.iter().any(|tag| tag == value),
            "protected" => image.protected.to_string() == *value,
            "member_status" => {
                value == "all" || image.members.iter().any(|member| member.status == *value)
            }
            "size_min" => image.size.unwrap_or(0) >= number(key, value)?,
            "size_max" => {
                let max = number(key, value)?;
                image.size.is_some_and(|size| size <= max)
            }
            "created_at" | "updated_at" => time_matches(&image.field(key), value)?,
            _ if RESERVED.contains(&key.as_str()) => true,
            property => image.properties.get(property) == Some(value),
        };
        if !keep {
            return Ok(false);
        }
    }
    Ok(true)
}

fn number(key: &str, value: &str) -> Result<u64, CloudError> {
    value
        .parse()
        .map_err(|_| CloudError::BadRequest(format!("{key} {value:?} is not a number")))
}

/// `in:a,b,"c,d"` lists several values; anything else is one value.
fn any_of(value: &str) -> Vec<String> {
    let Some(list) = value.strip_prefix("in:") else {
        return vec![value.to_string()];
    };
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for character in list.chars() {
        match character {
            '"' => quoted = !quoted,
            ',' if !quoted => values.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    values.push(current);
    values
}

fn time_matches(field: &Option<String>, filter: &str) -> Result<bool, CloudError> {
    let (operator, wanted) = filter.split_once(':').unwrap_or(("eq", filter));
    let parse = |text: &str| {
        text.parse::<jiff::Timestamp>().map_err(|_| {
            CloudError::BadRequest(format!(
                "{text:?} is not an ISO 8601 time (for example 2026-01-31T12:00:00Z)"
            ))
        })
    };
    let wanted = parse(wanted)?;
    let Some(actual) = field.as_deref().map(parse).transpose()? else {
        return Ok(false);
    };
    Ok(match operator {
        "gt" => actual > wanted,
        "gte" => actual >= wanted,
        "lt" => actual < wanted,
        "lte" => actual <= wanted,
        "eq" => actual == wanted,
        "neq" => actual != wanted,
        other => {
            return Err(CloudError::BadRequest(format!(
                "Invalid time comparison {other:?}: use gt, gte, lt, lte, eq or neq"
            )));
        }
    })
}
