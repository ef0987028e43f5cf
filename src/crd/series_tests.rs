use super::*;

/// The field names of a type's schema.
fn fields<T: schemars::JsonSchema>() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schema");
    schema["properties"]
        .as_object()
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

/// The Image fields a series sets per version itself, or does not offer, and why.
const SET_BY_THE_SERIES: &[(&str, &str)] = &[
    (
        "cloudCredentialsRef",
        "the series' own spec.cloudCredentialsRef",
    ),
    (
        "targets",
        "the series' own spec.targets: each target rotates with its overrides (ImageSeriesSpec::for_target)",
    ),
    (
        "hidden",
        "the series hides versions by role (pending, retired: hidden)",
    ),
    ("deactivated", "spec.retired: deactivated"),
    (
        "id",
        "each version's id is derived from the series and its version",
    ),
    (
        "source",
        "each release's own; its options are image fields of the series",
    ),
    ("source.url", "each release's file on the mirror"),
    (
        "source.hash",
        "each release's digest from the checksums file",
    ),
    (
        "source.hashFrom",
        "each release's digest comes from spec.checksums, signed as spec.checksums.signature says",
    ),
    (
        "source.secretRef",
        "not offered: series follow public mirrors, and their source carries no credentials",
    ),
    (
        "import",
        "a series creates its versions; it never observes others' images",
    ),
    ("managementPolicy", "a series manages its versions"),
    ("onDelete", "deleting a series deletes its versions"),
    (
        "resyncPeriod",
        "spec.schedule says when a series reads its mirror",
    ),
];

#[test]
fn every_image_field_reaches_a_series_version_or_the_series_says_why_not() {
    let series: Vec<String> = fields::<SeriesImage>();
    let image: Vec<String> = fields::<ImageSpec>()
        .into_iter()
        .chain(
            fields::<ImageSource>()
                .into_iter()
                .map(|name| format!("source.{name}")),
        )
        .collect();
    // The schemas are read, not assumed: both lists hold what the CRD shows.
    for (list, field) in [
        (&image, "visibility"),
        (&image, "source.convertTo"),
        (&series, "convertTo"),
    ] {
        assert!(list.iter().any(|f| f == field), "{field} in {list:?}");
    }
    let mut missing = Vec::new();
    for field in image {
        let name = field.strip_prefix("source.").unwrap_or(&field);
        let decided = series.iter().any(|s| s == name)
            || SET_BY_THE_SERIES.iter().any(|(set, _)| *set == field);
        if !decided {
            missing.push(field);
        }
    }
    assert!(
        missing.is_empty(),
        "Image fields a series neither offers in spec.image nor sets itself: {missing:?}; add them to SeriesImage (and ImageSeriesSpec::version_spec) or to SET_BY_THE_SERIES with why"
    );
}

#[test]
fn every_series_image_field_lands_in_each_versions_image_spec() {
    let template: SeriesImage = serde_json::from_value(serde_json::json!({
        "name": "n", "visibility": "shared", "tags": ["t"], "protected": true,
        "minDiskGB": 1, "minRamMB": 2, "properties": {"k": "v"},
        "propertyOwnership": {"own": ["x"]}, "containerFormat": "bare",
        "diskFormat": "qcow2", "members": ["p"], "decompress": "gzip", "method": "glanceDirect",
        "convertTo": "raw", "conversion": "glint", "caBundle": "pem",
        "connectTimeout": "10s", "idleTimeout": "1m", "maxRedirects": 2
    }))
    .expect("every field set");
    let set = serde_json::to_value(&template).expect("json");
    let spec = ImageSeriesSpec {
        image: template,
        ..ImageSeriesSpec::default()
    };
    let release = ImageSource {
        url: "https://mirror.example/a.img".into(),
        ..ImageSource::default()
    };
    let version = serde_json::to_value(spec.version_spec("n-1", Some(release))).expect("json");
    for (field, _) in set.as_object().expect("an object") {
        let top = version.get(field.as_str());
        let in_source = version["source"].get(field.as_str());
        // The name is the version's own (stable or NAME-VERSION); every other field is copied.
        assert!(
            top.or(in_source).is_some_and(|value| !value.is_null()),
            "spec.image.{field} does not reach the version's Image spec: {version}"
        );
    }
}
