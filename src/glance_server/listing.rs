//! `GET /v2/images`: Glance's filters, sort keys and marker paging over the stored records.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::CloudError;
use super::caller::Caller;
use super::image::ImageRecord;
use crate::vocabulary::GlanceStatus;

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

/// A query string's parameters, in order (a key may repeat, as `tag` does).
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(query: &str) -> Self {
        Self(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// One page of a listing, rendered as Glance's body.
pub fn page(images: Vec<ImageRecord>, query: &str, caller: &Caller) -> Result<Value, CloudError> {
    let query = Query::parse(query);
    let get = |key: &str| query.get(key);
    let pairs = &query.0;
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| CloudError::BadRequest(format!("limit {text:?} is not a number")))?
            .min(MAX_LIMIT),
    };
    let sort = sort_keys(pairs)?;
    let mut selected = Vec::new();
    for image in images {
        let shown = caller.lists(&image, get("visibility"), get("member_status"));
        if image.status != GlanceStatus::Deleted && shown && matches(&image, pairs)? {
            selected.push(image);
        }
    }
    selected.sort_by(|a, b| compare(a, b, &sort));
    let start = after_marker(&selected, get("marker"))?;
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

/// Where a page starts: just after the marker image (an unknown marker is a 400, as in Glance).
pub fn after_marker(sorted: &[ImageRecord], marker: Option<&str>) -> Result<usize, CloudError> {
    let Some(marker) = marker else {
        return Ok(0);
    };
    sorted
        .iter()
        .position(|image| image.id == marker)
        .map(|position| position + 1)
        .ok_or_else(|| CloudError::BadRequest(format!("marker {marker} could not be found")))
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
            "visibility" => value == "all" || image.visibility.as_str() == value,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glance_server::image::Formats;

    fn image(name: &str, created: &str, size: Option<u64>, tags: &[&str]) -> ImageRecord {
        let mut image = ImageRecord::create(
            &json!({"name": name, "tags": tags, "os_distro": "debian"}),
            "p1",
            created,
            &Formats::default(),
        )
        .expect("create");
        image.size = size;
        image
    }

    fn admin() -> Caller {
        Caller {
            user: None,
            project: None,
            admin: true,
        }
    }

    fn names(body: &Value) -> Vec<String> {
        body["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|image| image["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn three() -> Vec<ImageRecord> {
        vec![
            image("a", "2026-01-01T00:00:00Z", Some(10), &["x"]),
            image("b", "2026-01-02T00:00:00Z", Some(30), &["x", "y"]),
            image("c", "2026-01-03T00:00:00Z", None, &[]),
        ]
    }

    #[test]
    fn filters_select_as_glance_does() {
        // (query, names in Glance's default order: newest first)
        let table = [
            ("", vec!["c", "b", "a"]),
            ("name=b", vec!["b"]),
            ("name=in:a,c", vec!["c", "a"]),
            ("tag=x", vec!["b", "a"]),
            ("tag=x&tag=y", vec!["b"]),
            ("size_min=20", vec!["b"]),
            ("size_max=20", vec!["a"]),
            ("os_distro=debian", vec!["c", "b", "a"]),
            ("os_distro=ubuntu", vec![]),
            ("created_at=gte:2026-01-02T00:00:00Z", vec!["c", "b"]),
            ("status=queued&visibility=shared", vec!["c", "b", "a"]),
        ];
        for (query, expected) in table {
            let body = page(three(), query, &admin()).expect(query);
            assert_eq!(names(&body), expected, "{query}");
        }
    }

    #[test]
    fn sorting_and_marker_paging_walk_every_image_once() {
        let images = three();
        let body = page(images.clone(), "sort=name:asc&limit=2", &admin()).expect("first page");
        assert_eq!(names(&body), ["a", "b"]);
        let next = body["next"].as_str().expect("a full page has next");
        let query = next.trim_start_matches("/v2/images?");
        let rest = page(images, query, &admin()).expect("second page");
        assert_eq!(names(&rest), ["c"]);
        assert!(rest.get("next").is_none(), "a short page is the last");
        let by_size = page(three(), "sort_key=size&sort_dir=desc", &admin()).expect("size");
        assert_eq!(names(&by_size), ["b", "a", "c"], "sizes compare as numbers");
    }

    #[test]
    fn bad_parameters_are_400s_that_say_what_to_fix() {
        for query in [
            "limit=ten",
            "marker=00000000-0000-4000-8000-000000000000",
            "sort=name:up",
            "created_at=soon:2026-01-01T00:00:00Z",
            "size_min=big",
        ] {
            let refused = page(three(), query, &admin()).expect_err(query);
            assert_eq!(refused.reason(), "BadRequest", "{query}: {refused}");
        }
    }
}
