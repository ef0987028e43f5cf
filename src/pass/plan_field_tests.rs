//! The guard for adding a spec field: every field of the Image CRD's spec must either change
//! what the plan does (shown by a change to that field alone), or say where else it is
//! handled; and each must be classed as managed-only or not. A new field fails here until
//! someone decides both (see docs/development.md, "Adding a spec field").

use super::*;
use serde_json::{Value, json};

/// How the plan answers one spec field.
enum Handling {
    /// Merging `change` into the spec (on top of `base`) changes the plan against the image
    /// `image` makes of the matching one.
    Planned {
        base: Value,
        change: Value,
        image: fn(&mut GlanceImage),
    },
    /// The plan's per-field diff does not see it; the text says what does.
    Elsewhere(&'static str),
}

fn planned(change: Value) -> Handling {
    planned_on(change, |_| {})
}

/// A change the plan must act on against the matching image as `image` alters it.
fn planned_on(change: Value, image: fn(&mut GlanceImage)) -> Handling {
    Handling::Planned {
        base: json!({}),
        change,
        image,
    }
}

/// The spec as JSON, with `extra`'s fields merged in.
fn spec_with(extra: &Value) -> ImageSpec {
    let mut value = serde_json::to_value(spec()).unwrap();
    for (key, field) in extra.as_object().unwrap() {
        value[key] = field.clone();
    }
    serde_json::from_value(value).expect("a valid spec")
}

fn handling() -> Vec<(&'static str, Handling)> {
    let queued = |image: &mut GlanceImage| image.status = GlanceStatus::Queued;
    vec![
        ("name", planned(json!({"name": "other"}))),
        ("visibility", planned(json!({"visibility": "community"}))),
        ("tags", planned(json!({"tags": ["t"]}))),
        ("protected", planned(json!({"protected": true}))),
        ("hidden", planned(json!({"hidden": true}))),
        ("minDiskGB", planned(json!({"minDiskGB": 2}))),
        ("minRamMB", planned(json!({"minRamMB": 256}))),
        (
            "properties",
            planned(json!({"properties": {"os_distro": "debian"}})),
        ),
        (
            "propertyOwnership",
            planned_on(json!({"propertyOwnership": {"own": ["*"]}}), |image| {
                image.properties.insert("x".into(), "y".into());
            }),
        ),
        (
            "containerFormat",
            planned_on(json!({"containerFormat": "ovf"}), queued),
        ),
        (
            "diskFormat",
            planned_on(json!({"diskFormat": "raw"}), queued),
        ),
        (
            "source",
            planned_on(
                json!({"source": {"url": "https://example.com/x.qcow2"}}),
                queued,
            ),
        ),
        ("deactivated", planned(json!({"deactivated": true}))),
        (
            "members",
            Handling::Planned {
                base: json!({"visibility": "shared"}),
                change: json!({"members": ["p1"]}),
                image: |image| image.visibility = Visibility::Shared,
            },
        ),
        (
            "id",
            Handling::Elsewhere("the create request (act): Glance never changes an id"),
        ),
        (
            "onDelete",
            Handling::Elsewhere("plan_delete: delete, or detach and leave the image"),
        ),
        (
            "whenInUse",
            Handling::Elsewhere(
                "act::delete: an image Glance keeps as in use is hidden, and deactivated if asked",
            ),
        ),
        (
            "cloudCredentialsRef",
            Handling::Elsewhere("controller::clouds: which cloud and project, not a Glance field"),
        ),
        (
            "targets",
            Handling::Elsewhere(
                "controller::image_targets: one pass per target, each against the spec as that cloud sees it (ImageSpec::per_destination)",
            ),
        ),
        (
            "managementPolicy",
            Handling::Elsewhere("observe: an unmanaged Image imports and is only observed"),
        ),
        (
            "import",
            Handling::Elsewhere("observe: how an unmanaged Image finds its image"),
        ),
        (
            "resyncPeriod",
            Handling::Elsewhere("the controller's requeue: when Glance is read again"),
        ),
    ]
}

/// The spec fields that mean something for an unmanaged (imported) Image too.
const UNMANAGED_FIELDS: &[&str] = &[
    "cloudCredentialsRef",
    "managementPolicy",
    "import",
    "resyncPeriod",
];

fn crd_spec_fields() -> BTreeSet<String> {
    let crd = serde_json::to_value(crate::crd::definition().unwrap()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object()
        .expect("spec properties")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_spec_field_is_either_planned_or_says_what_handles_it() {
    let fields = crd_spec_fields();
    let listed: BTreeSet<String> = handling()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        fields, listed,
        "a spec field was added or removed: list it in handling() with a change the plan must \
         act on, or with what handles it (docs/development.md: Adding a spec field)"
    );
    for (name, handled) in handling() {
        let (base, change, image) = match handled {
            Handling::Planned {
                base,
                change,
                image,
            } => (base, change, image),
            Handling::Elsewhere(what) => {
                assert!(!what.is_empty(), "spec.{name}: say what handles it");
                continue;
            }
        };
        let mut changed = base.clone();
        for (key, value) in change.as_object().unwrap() {
            changed[key] = value.clone();
        }
        let mut glance = matching_image();
        image(&mut glance);
        let before = Desired::from_spec(&spec_with(&base), "obj", UID);
        let after = Desired::from_spec(&spec_with(&changed), "obj", UID);
        let members = no_members();
        assert_ne!(
            plan_for(&after, glance.clone(), &members).steps,
            plan_for(&before, glance, &members).steps,
            "spec.{name} changed, but the plan did the same: it needs a diff (and a patch op)"
        );
    }
}

#[test]
fn every_spec_field_is_classed_as_managed_only_or_meaningful_when_imported() {
    let fields = crd_spec_fields();
    let mut classed: BTreeSet<String> = crate::crd::MANAGED_ONLY_FIELDS
        .iter()
        .map(|field| field.to_string())
        .collect();
    for field in UNMANAGED_FIELDS {
        assert!(
            classed.insert(field.to_string()),
            "{field} is both managed-only and meaningful for unmanaged Images"
        );
    }
    assert_eq!(
        fields, classed,
        "each spec field goes in crd::MANAGED_ONLY_FIELDS (the CRD then refuses it on unmanaged \
         Images) or in UNMANAGED_FIELDS here"
    );
}
