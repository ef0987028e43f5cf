//! The Image CRD's admission rules, evaluated client-side by kube's CEL validator against the
//! generated schema (no apiserver needed, so CI always runs them), and the schema's promises:
//! every field documented for `kubectl explain`, no formats the apiserver warns about.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::core::cel::Validator;
use serde_json::{Value, json};

fn schema() -> Value {
    schema_of(&glint::crd::definition().expect("CRD"))
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

fn image(spec: Value) -> Value {
    json!({"apiVersion": "glint.dev/v1alpha1", "kind": "Image", "metadata": {"name": "x"}, "spec": spec})
}

fn minimal() -> Value {
    json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "diskFormat": "qcow2"})
}

fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(base), Some(patch)) = (base.as_object_mut(), patch.as_object()) {
        for (key, value) in patch {
            if value.is_null() {
                base.remove(key);
            } else {
                base.insert(key.clone(), value.clone());
            }
        }
    }
    base
}

/// `Ok(())` or the messages of the failed rules.
fn admit(new: Value, old: Option<Value>) -> Result<(), String> {
    admit_to(&schema(), image(new), old.map(image))
}

/// `Ok(())` or the messages of the rules of `schema` the object breaks (as an update of `old`).
fn admit_to(schema: &Value, new: Value, old: Option<Value>) -> Result<(), String> {
    Validator::new()
        .validate(schema, &new, old.as_ref())
        .map_err(|errors| {
            errors
                .as_slice()
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        })
}

#[test]
fn new_images_are_admitted_or_refused_with_what_to_fix() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("minimal managed image", minimal(), None),
        (
            "every field",
            with(
                minimal(),
                json!({
                    "name": "n", "visibility": "shared", "tags": ["a"], "protected": true, "hidden": true,
                    "minDiskGB": 1, "minRamMB": 512, "properties": {"os_distro": "debian"},
                    "containerFormat": "bare", "id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f",
                    "source": {"url": "https://example.org/i.qcow2", "hash": {"algorithm": "sha256", "value": "a".repeat(64)},
                               "decompress": "auto", "method": "upload"},
                    "deactivated": false, "members": ["p1"], "onDelete": "detach", "resyncPeriod": "10m"
                }),
            ),
            None,
        ),
        (
            "managed without diskFormat",
            with(minimal(), json!({"diskFormat": null})),
            Some("needs spec.diskFormat"),
        ),
        (
            "targets instead of one cloud",
            with(
                minimal(),
                json!({"cloudCredentialsRef": null, "source": {"url": "https://x/a.qcow2"}, "targets": [
                    {"name": "ceph-eu", "cloudCredentialsRef": {"secretName": "s", "cloudName": "eu"}, "region": "RegionTwo", "convertTo": "raw"},
                    {"name": "partner", "cloudCredentialsRef": {"secretName": "p", "cloudName": "p"}, "visibility": "shared", "members": ["p1"]},
                ]}),
            ),
            None,
        ),
        (
            "targets and one cloud",
            with(
                minimal(),
                json!({"targets": [{"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}}]}),
            ),
            Some("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds)"),
        ),
        (
            "neither targets nor one cloud",
            with(minimal(), json!({"cloudCredentialsRef": null})),
            Some("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds)"),
        ),
        (
            "a target converting a format glint cannot convert",
            with(
                minimal(),
                json!({"cloudCredentialsRef": null, "diskFormat": "iso", "targets": [
                    {"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}, "convertTo": "raw"},
                ]}),
            ),
            Some("a target's convertTo needs spec.diskFormat"),
        ),
        (
            "a target's members without its visibility shared",
            with(
                minimal(),
                json!({"cloudCredentialsRef": null, "targets": [
                    {"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}, "members": ["p1"]},
                ]}),
            ),
            Some("a target's members need that target's visibility: shared"),
        ),
        (
            "members without shared",
            with(minimal(), json!({"members": ["p1"]})),
            Some("needs spec.visibility: shared"),
        ),
        (
            "members on a private image",
            with(
                minimal(),
                json!({"members": ["p1"], "visibility": "private"}),
            ),
            Some("shared"),
        ),
        (
            "reserved property prefix",
            with(minimal(), json!({"properties": {"os_glance_x": "1"}})),
            Some("must not set Glance's own keys"),
        ),
        (
            "reserved hash property",
            with(minimal(), json!({"properties": {"os_hash_value": "1"}})),
            Some("Glance's own keys"),
        ),
        (
            "reserved stores key",
            with(minimal(), json!({"properties": {"stores": "fs"}})),
            Some("Glance's own keys"),
        ),
        (
            "a base field as property",
            with(minimal(), json!({"properties": {"min_ram": "1"}})),
            Some("dedicated spec fields"),
        ),
        (
            "unmanaged without import",
            with(minimal(), json!({"managementPolicy": "unmanaged"})),
            Some("needs spec.import"),
        ),
        (
            "import while managed",
            with(
                minimal(),
                json!({"import": {"id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"}}),
            ),
            Some("only works with managementPolicy: unmanaged"),
        ),
        (
            "unmanaged import by filter needs no diskFormat",
            json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "managementPolicy": "unmanaged",
                   "import": {"filter": {"name": "cirros", "newest": true}}}),
            None,
        ),
        (
            "import with both id and filter",
            json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "managementPolicy": "unmanaged",
                   "import": {"id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f", "filter": {"name": "x"}}}),
            Some("exactly one of id or filter"),
        ),
        (
            "empty import filter",
            json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "managementPolicy": "unmanaged",
                   "import": {"filter": {"newest": true}}}),
            Some("at least one of name"),
        ),
        (
            "hash of the wrong length",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "hash": {"algorithm": "sha512", "value": "ab"}}}),
            ),
            Some("128 hex digits"),
        ),
        (
            "non-http source",
            with(minimal(), json!({"source": {"url": "ftp://x/i"}})),
            Some("http:// or https://"),
        ),
        (
            "file source without a path, checked like any URL",
            with(minimal(), json!({"source": {"url": "files/i"}})),
            Some("a file: URL"),
        ),
        (
            "empty secret name",
            with(
                minimal(),
                json!({"cloudCredentialsRef": {"secretName": "", "cloudName": "c"}}),
            ),
            Some("secretName must not be empty"),
        ),
        (
            "empty tag",
            with(minimal(), json!({"tags": [""]})),
            Some("1 to 255 characters"),
        ),
        (
            "unmanaged with managed-only fields names each of them",
            json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "managementPolicy": "unmanaged",
                   "import": {"filter": {"name": "cirros"}},
                   "source": {"url": "https://x/i"}, "tags": ["a"], "onDelete": "delete"}),
            Some("remove them: spec.tags spec.source spec.onDelete"),
        ),
        (
            "unmanaged with only a name",
            json!({"cloudCredentialsRef": {"secretName": "s", "cloudName": "c"}, "managementPolicy": "unmanaged",
                   "import": {"id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"}, "name": "x"}),
            Some("remove them: spec.name"),
        ),
        (
            "a resync period too large for any clock",
            with(minimal(), json!({"resyncPeriod": "100000000000000000000s"})),
            Some("resyncPeriod must be between 10s and 168h"),
        ),
        (
            "a resync period under 10s",
            with(minimal(), json!({"resyncPeriod": "9s"})),
            Some("between 10s and 168h"),
        ),
        (
            "a resync period over 7 days",
            with(minimal(), json!({"resyncPeriod": "168h1s"})),
            Some("between 10s and 168h"),
        ),
        (
            "the shortest resync period",
            with(minimal(), json!({"resyncPeriod": "10s"})),
            None,
        ),
        (
            "webDownload with decompression",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i.xz", "method": "webDownload", "decompress": "xz"}}),
            ),
            Some("set decompress: none"),
        ),
        (
            "a hash and where it is published, both",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "hash": {"algorithm": "sha256", "value": "a".repeat(64)}, "hashFrom": {"url": "https://x/SHA256SUMS"}}}),
            ),
            Some("not both"),
        ),
        (
            "a published hash with webDownload",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "method": "webDownload", "hashFrom": {"url": "https://x/SHA256SUMS"}}}),
            ),
            Some("use method upload or glanceDirect"),
        ),
        (
            "a published hash from a file: URL",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "hashFrom": {"url": "file:///SHA256SUMS"}}}),
            ),
            Some("source.hashFrom.url must be an http:// or https:// URL"),
        ),
        (
            "a published hash, signed",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "hashFrom": {"url": "https://x/SHA256SUMS", "signature": {"detached": "{file}.gpg", "keys": {"configMapName": "k"}}}}}),
            ),
            None,
        ),
        (
            "webDownload with a sha256 hash",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "method": "webDownload", "hash": {"algorithm": "sha256", "value": "a".repeat(64)}}}),
            ),
            Some("can only check a sha512 hash"),
        ),
        (
            "webDownload with credentials",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "method": "webDownload", "secretRef": {"name": "mirror"}}}),
            ),
            Some("cannot send credentials"),
        ),
        (
            "webDownload with a sha512 hash",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "method": "webDownload", "decompress": "none", "hash": {"algorithm": "sha512", "value": "a".repeat(128)}}}),
            ),
            None,
        ),
        (
            "every source option",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i.raw.zst", "method": "glanceDirect", "decompress": "zstd",
                "secretRef": {"name": "mirror"}, "caBundle": "-----BEGIN CERTIFICATE-----", "connectTimeout": "5s",
                "idleTimeout": "2m", "maxRedirects": 2}}),
            ),
            None,
        ),
        (
            "an idle timeout over an hour",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "idleTimeout": "2h"}}),
            ),
            Some("idleTimeout must be between 1s and 1h"),
        ),
        (
            "a connect timeout under a second",
            with(
                minimal(),
                json!({"source": {"url": "https://x/i", "connectTimeout": "500ms"}}),
            ),
            Some("connectTimeout must be between 1s and 10m"),
        ),
        (
            "the longest resync period",
            with(minimal(), json!({"resyncPeriod": "168h"})),
            None,
        ),
        (
            "property ownership with keys and prefixes",
            with(
                minimal(),
                json!({"properties": {"os_distro": "debian"},
                       "propertyOwnership": {"own": ["hw_*", "legacy"], "ignore": ["site_*", "backup_policy"]}}),
            ),
            None,
        ),
        (
            "owning every property",
            with(minimal(), json!({"propertyOwnership": {"own": ["*"]}})),
            None,
        ),
        (
            "a star inside an ownership pattern",
            with(
                minimal(),
                json!({"propertyOwnership": {"own": ["hw_*_bus"]}}),
            ),
            Some("* may appear only at the end"),
        ),
        (
            "an empty ownership pattern",
            with(minimal(), json!({"propertyOwnership": {"ignore": [""]}})),
            Some("each entry is 1 to 255 characters"),
        ),
        (
            "ignoring a prefix the spec also sets a key of (the spec's key is still set)",
            with(
                minimal(),
                json!({"properties": {"os_distro": "debian"}, "propertyOwnership": {"ignore": ["os_*"]}}),
            ),
            None,
        ),
    ];
    for (what, spec, expected) in cases {
        match (admit(spec, None), expected) {
            (Ok(()), None) => {}
            (Err(messages), Some(fragment)) => {
                assert!(messages.contains(fragment), "{what}: {messages}")
            }
            (outcome, expected) => panic!("{what}: got {outcome:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn updates_may_change_mutable_fields_but_not_immutable_ones() {
    let old = with(
        minimal(),
        json!({"source": {"url": "https://x/a.qcow2"}, "id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"}),
    );
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "rename, retag, reprotect",
            with(
                old.clone(),
                json!({"name": "new", "tags": ["x"], "protected": true, "properties": {"a": "b"}}),
            ),
            None,
        ),
        (
            "deactivate",
            with(old.clone(), json!({"deactivated": true})),
            None,
        ),
        (
            "one cloud swapped for targets",
            with(
                old.clone(),
                json!({"cloudCredentialsRef": null, "targets": [{"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}}]}),
            ),
            Some("cannot replace each other on an existing Image"),
        ),
        (
            "change the source",
            with(old.clone(), json!({"source": {"url": "https://x/b.qcow2"}})),
            Some("spec.source is immutable"),
        ),
        (
            "drop the source",
            with(old.clone(), json!({"source": null})),
            Some("spec.source is immutable"),
        ),
        (
            "change the id",
            with(
                old.clone(),
                json!({"id": "2b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"}),
            ),
            Some("spec.id is immutable"),
        ),
        (
            "change the disk format",
            with(old.clone(), json!({"diskFormat": "raw"})),
            Some("spec.diskFormat is immutable"),
        ),
        (
            "switch to unmanaged",
            with(
                old.clone(),
                json!({"managementPolicy": "unmanaged", "import": {"id": "1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"}}),
            ),
            Some("managementPolicy is immutable"),
        ),
    ];
    for (what, new, expected) in cases {
        match (admit(new, Some(old.clone())), expected) {
            (Ok(()), None) => {}
            (Err(messages), Some(fragment)) => {
                assert!(messages.contains(fragment), "{what}: {messages}")
            }
            (outcome, expected) => panic!("{what}: got {outcome:?}, expected {expected:?}"),
        }
    }
    let unset_source = minimal();
    assert_eq!(
        admit(
            with(
                unset_source.clone(),
                json!({"source": {"url": "https://x/late"}})
            ),
            Some(unset_source)
        ),
        Ok(()),
        "a source may be added later"
    );
}

/// The ImageSeries' rules for its cloud(s), new and on update: `Ok(())` or the messages.
fn admit_series(new: Value, old: Option<Value>) -> Result<(), String> {
    let schema = schema_of(&glint::crd::series_definition().expect("ImageSeries CRD"));
    let series = |spec: Value| json!({"apiVersion": "glint.dev/v1alpha1", "kind": "ImageSeries", "metadata": {"name": "x"}, "spec": spec});
    admit_to(&schema, series(new), old.map(series))
}

#[test]
fn a_series_names_one_cloud_or_targets_and_never_swaps_them() {
    let one_cloud = json!({
        "cloudCredentialsRef": {"secretName": "s", "cloudName": "c"},
        "image": {"diskFormat": "qcow2"},
        "versions": [{"version": "1", "url": "https://x/1.qcow2"}],
    });
    let targets = json!([
        {"name": "ceph-eu", "cloudCredentialsRef": {"secretName": "s", "cloudName": "eu"}, "region": "RegionTwo", "convertTo": "raw"},
        {"name": "partner", "cloudCredentialsRef": {"secretName": "p", "cloudName": "p"}, "visibility": "shared", "members": ["p1"]},
    ]);
    let on_targets = with(
        one_cloud.clone(),
        json!({"cloudCredentialsRef": null, "targets": targets}),
    );
    let cases: Vec<(&str, Value, Option<Value>, Option<&str>)> = vec![
        ("one cloud", one_cloud.clone(), None, None),
        (
            "targets instead of one cloud",
            on_targets.clone(),
            None,
            None,
        ),
        (
            "targets and one cloud",
            with(one_cloud.clone(), json!({"targets": targets})),
            None,
            Some("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds)"),
        ),
        (
            "neither",
            with(one_cloud.clone(), json!({"cloudCredentialsRef": null})),
            None,
            Some("set spec.cloudCredentialsRef (one cloud) or spec.targets (several clouds)"),
        ),
        (
            "a target's members without its visibility shared",
            with(
                on_targets.clone(),
                json!({"targets": [{"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}, "members": ["p1"]}]}),
            ),
            None,
            Some("a target's members need that target's visibility: shared"),
        ),
        (
            "a target converting releases glint cannot convert",
            with(
                on_targets.clone(),
                json!({"image": {"diskFormat": "iso"}, "targets": [{"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}, "convertTo": "raw"}]}),
            ),
            None,
            Some("a target's convertTo needs image.diskFormat"),
        ),
        (
            "one cloud swapped for targets",
            on_targets.clone(),
            Some(one_cloud.clone()),
            Some("cannot replace each other on an existing ImageSeries"),
        ),
        (
            "a target added to the list",
            with(
                on_targets.clone(),
                json!({"targets": [{"name": "a", "cloudCredentialsRef": {"secretName": "s", "cloudName": "a"}}, {"name": "b", "cloudCredentialsRef": {"secretName": "s", "cloudName": "b"}}]}),
            ),
            Some(on_targets.clone()),
            None,
        ),
    ];
    for (what, new, old, expected) in cases {
        match (admit_series(new, old), expected) {
            (Ok(()), None) => {}
            (Err(messages), Some(fragment)) => {
                assert!(messages.contains(fragment), "{what}: {messages}")
            }
            (outcome, expected) => panic!("{what}: got {outcome:?}, expected {expected:?}"),
        }
    }
}

fn undocumented(schema: &Value, path: &str, found: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let here = format!("{path}.{name}");
        // metadata and Condition are Kubernetes' own types, documented upstream.
        if here == ".metadata" || here.starts_with(".status.conditions") {
            continue;
        }
        let described = property
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if !described && !matches!(name.as_str(), "apiVersion" | "kind") {
            found.push(here.clone());
        }
        undocumented(property, &here, found);
        if let Some(items) = property.get("items") {
            undocumented(items, &here, found);
        }
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    let mut missing = Vec::new();
    undocumented(&schema(), "", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a doc comment: {missing:?}"
    );
}

#[test]
fn every_series_and_shared_image_field_has_a_description_for_kubectl_explain() {
    for crd in [
        glint::crd::series_definition().expect("ImageSeries CRD"),
        glint::crd::shared_definition().expect("SharedImage CRD"),
    ] {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .expect("json");
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{}: fields without a doc comment: {missing:?}",
            crd.spec.names.kind
        );
        assert!(
            !serde_json::to_string(&schema)
                .expect("text")
                .contains("\"uint"),
            "unsigned formats make the apiserver warn"
        );
    }
}

#[test]
fn the_schema_uses_only_formats_the_apiserver_knows() {
    let text = glint::crd::crd_yaml().expect("yaml");
    assert!(
        !text.contains("format: uint"),
        "unsigned formats make the apiserver warn"
    );
    assert!(
        text.contains("minimum: 0"),
        "unsigned fields keep their lower bound"
    );
}

#[test]
fn the_printer_columns_show_name_id_status_ready_targets_and_age() {
    let crd = glint::crd::definition().expect("CRD");
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|column| column.name.clone())
        .collect();
    assert_eq!(
        columns,
        ["Glance Name", "ID", "Status", "Ready", "Targets", "Age"]
    );
}

#[test]
fn the_checked_in_crds_are_what_glint_generates() {
    let image = glint::crd::crd_yaml().expect("yaml");
    let series = glint::crd::series_crd_yaml().expect("yaml");
    let shared = glint::crd::shared_crd_yaml().expect("yaml");
    for (copy, generated) in [
        ("crds/images.glint.dev.yaml", &image),
        ("deploy/helm/glint/crds/images.glint.dev.yaml", &image),
        ("crds/imageseries.glint.dev.yaml", &series),
        ("deploy/helm/glint/crds/imageseries.glint.dev.yaml", &series),
        ("crds/sharedimages.glint.dev.yaml", &shared),
        (
            "deploy/helm/glint/crds/sharedimages.glint.dev.yaml",
            &shared,
        ),
    ] {
        let path = format!("{}/{copy}", env!("CARGO_MANIFEST_DIR"));
        let checked_in = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{copy} exists (run scripts/generate)"));
        assert!(
            *generated == checked_in,
            "{copy} is stale: run scripts/generate and commit the result"
        );
    }
}

#[test]
fn every_example_manifest_is_an_image_the_apiserver_would_admit() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples"));
    let mut checked = Vec::new();
    let files = std::fs::read_dir(dir)
        .expect("deploy/examples")
        .chain(std::fs::read_dir(dir.join("cluster")).expect("deploy/examples/cluster"));
    for entry in files {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let document: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        if document["kind"] != "Image" {
            continue;
        }
        let image: glint::crd::Image = serde_json::from_value(document.clone())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(
            image.spec.cloud_secret_names().next(),
            Some("openstack"),
            "{}",
            path.display()
        );
        Validator::new()
            .validate(&schema(), &document, None)
            .unwrap_or_else(|errors| panic!("{} is refused: {errors:?}", path.display()));
        checked.push(
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string(),
        );
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "deactivated.yaml",
            "full.yaml",
            "hello-shared.yaml",
            "hello.yaml",
            "import-by-filter.yaml",
            "minimal.yaml",
            "shared-with-members.yaml"
        ]
    );
}
