//! `GET /v2/images` filters, as a typed builder that renders to query parameters.

use std::collections::BTreeMap;

use super::types::{GlanceStatus, MemberStatus, Visibility};

/// Comparison for `created_at` / `updated_at` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeComparison {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl TimeComparison {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Eq => "eq",
            Self::Neq => "neq",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// The name filter: one exact name, or any of several (`in:a,b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFilter {
    Exactly(String),
    AnyOf(Vec<String>),
}

/// Filters and ordering of an image listing. Empty means Glance's defaults: every image the
/// caller can see, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub name: Option<NameFilter>,
    /// Every tag must be present (Glance ANDs repeated `tag`).
    pub tags: Vec<String>,
    pub visibility: Option<Visibility>,
    pub status: Option<GlanceStatus>,
    pub owner: Option<String>,
    pub member_status: Option<MemberStatus>,
    /// Custom property filters (`key=value`).
    pub properties: BTreeMap<String, String>,
    pub size_min: Option<u64>,
    pub size_max: Option<u64>,
    pub created_at: Option<(TimeComparison, String)>,
    pub updated_at: Option<(TimeComparison, String)>,
    /// Sort keys in priority order.
    pub sort: Vec<(String, SortDirection)>,
    /// Page size; Glance caps it at 1000.
    pub page_size: Option<u32>,
}

/// Glance's hard page-size ceiling.
pub const MAX_PAGE_SIZE: u32 = 1000;

impl ListQuery {
    /// The query parameters, in a stable order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut push = |key: &str, value: String| pairs.push((key.to_string(), value));
        match &self.name {
            Some(NameFilter::Exactly(name)) => push("name", name.clone()),
            Some(NameFilter::AnyOf(names)) => push("name", format!("in:{}", in_list(names))),
            None => {}
        }
        for tag in &self.tags {
            push("tag", tag.clone());
        }
        if let Some(visibility) = &self.visibility {
            push("visibility", visibility.to_string());
        }
        if let Some(status) = &self.status {
            push("status", status.to_string());
        }
        if let Some(owner) = &self.owner {
            push("owner", owner.clone());
        }
        if let Some(member_status) = &self.member_status {
            push("member_status", member_status.to_string());
        }
        for (key, value) in &self.properties {
            push(key, value.clone());
        }
        if let Some(size) = self.size_min {
            push("size_min", size.to_string());
        }
        if let Some(size) = self.size_max {
            push("size_max", size.to_string());
        }
        if let Some((op, at)) = &self.created_at {
            push("created_at", format!("{}:{at}", op.as_str()));
        }
        if let Some((op, at)) = &self.updated_at {
            push("updated_at", format!("{}:{at}", op.as_str()));
        }
        if !self.sort.is_empty() {
            let sort = self
                .sort
                .iter()
                .map(|(key, direction)| match direction {
                    SortDirection::Asc => format!("{key}:asc"),
                    SortDirection::Desc => format!("{key}:desc"),
                })
                .collect::<Vec<_>>()
                .join(",");
            push("sort", sort);
        }
        if let Some(limit) = self.page_size {
            push("limit", limit.clamp(1, MAX_PAGE_SIZE).to_string());
        }
        pairs
    }
}

/// Glance splits `in:` lists on commas and lets a value hold a comma only inside quotes.
fn in_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| {
            if name.contains(',') || name.contains('"') {
                format!("\"{}\"", name.replace('"', "\\\""))
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: ListQuery) -> Vec<(String, String)> {
        query.to_pairs()
    }

    fn p(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    #[test]
    fn each_filter_renders_as_glance_expects() {
        let table: Vec<(ListQuery, Vec<(String, String)>)> = vec![
            (ListQuery::default(), vec![]),
            (
                ListQuery {
                    name: Some(NameFilter::Exactly("a b".into())),
                    ..Default::default()
                },
                vec![p("name", "a b")],
            ),
            (
                ListQuery {
                    name: Some(NameFilter::AnyOf(vec!["a".into(), "b,c".into()])),
                    ..Default::default()
                },
                vec![p("name", "in:a,\"b,c\"")],
            ),
            (
                ListQuery {
                    tags: vec!["x".into(), "y".into()],
                    ..Default::default()
                },
                vec![p("tag", "x"), p("tag", "y")],
            ),
            (
                ListQuery {
                    visibility: Some(Visibility::Shared),
                    status: Some(GlanceStatus::Active),
                    owner: Some("p1".into()),
                    member_status: Some(MemberStatus::Accepted),
                    ..Default::default()
                },
                vec![
                    p("visibility", "shared"),
                    p("status", "active"),
                    p("owner", "p1"),
                    p("member_status", "accepted"),
                ],
            ),
            (
                ListQuery {
                    properties: BTreeMap::from([("os_distro".into(), "debian".into())]),
                    size_min: Some(1),
                    size_max: Some(2),
                    ..Default::default()
                },
                vec![
                    p("os_distro", "debian"),
                    p("size_min", "1"),
                    p("size_max", "2"),
                ],
            ),
            (
                ListQuery {
                    created_at: Some((TimeComparison::Gte, "2026-01-01T00:00:00Z".into())),
                    updated_at: Some((TimeComparison::Lt, "2026-02-01T00:00:00Z".into())),
                    ..Default::default()
                },
                vec![
                    p("created_at", "gte:2026-01-01T00:00:00Z"),
                    p("updated_at", "lt:2026-02-01T00:00:00Z"),
                ],
            ),
            (
                ListQuery {
                    sort: vec![
                        ("created_at".into(), SortDirection::Desc),
                        ("name".into(), SortDirection::Asc),
                    ],
                    page_size: Some(5000),
                    ..Default::default()
                },
                vec![p("sort", "created_at:desc,name:asc"), p("limit", "1000")],
            ),
        ];
        for (query, expected) in table {
            assert_eq!(pairs(query.clone()), expected, "{query:?}");
        }
    }
}
