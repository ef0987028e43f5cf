//! Table tests of property ownership: what glint sets, restores, removes and leaves alone.

use super::*;

fn spec_properties(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// An image that already carries `desired`'s properties and record, plus `extra` set by others.
fn image_carrying(desired: &Desired, extra: &[(&str, &str)]) -> GlanceImage {
    image(|i| {
        i.properties = desired.properties_to_write();
        i.properties.extend(spec_properties(extra));
    })
}

fn ownership(own: &[&str], ignore: &[&str]) -> PropertyOwnership {
    PropertyOwnership {
        own: own.iter().map(|p| p.to_string()).collect(),
        ignore: ignore.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn glint_removes_only_what_it_recorded_or_was_told_to_own() {
    let before = desired(|s| s.properties = spec_properties(&[("a", "1"), ("b", "2")]));
    let after = desired(|s| s.properties = spec_properties(&[("a", "1")]));
    let rows: Vec<(&str, Desired, GlanceImage, Vec<PatchOp>)> = vec![
        (
            "a key glint set and the spec dropped is removed, and the record shrinks",
            after.clone(),
            image_carrying(&before, &[]),
            vec![
                set(PROPERTIES_RECORD, r#"["a"]"#),
                PatchOp::RemoveProperty("b".into()),
            ],
        ),
        (
            "a key added behind glint's back survives",
            after.clone(),
            image_carrying(&after, &[("injected_by", "plugin")]),
            vec![],
        ),
        (
            "the mark of a delete Glance refused as in use goes once the image is wanted again",
            after.clone(),
            image_carrying(
                &after,
                &[(
                    IN_USE_PROPERTY,
                    "Image x could not be deleted because it is in use",
                )],
            ),
            vec![PatchOp::RemoveProperty(IN_USE_PROPERTY.into())],
        ),
        (
            "a key glint set but whose value was changed outside is restored",
            after.clone(),
            image_carrying(&after, &[("a", "changed")]),
            vec![set("a", "1")],
        ),
        (
            "an image without a record (older glint) loses nothing and gets one",
            after.clone(),
            image(|i| {
                i.properties = spec_properties(&[("a", "1"), ("b", "2"), (OWNER_PROPERTY, UID)]);
            }),
            vec![set(PROPERTIES_RECORD, r#"["a"]"#)],
        ),
        (
            "an unreadable record removes nothing and is written again",
            after.clone(),
            image(|i| {
                i.properties = after.properties_to_write();
                i.properties.insert("b".into(), "2".into());
                i.properties
                    .insert(PROPERTIES_RECORD.into(), "b, edited by hand".into());
            }),
            vec![set(PROPERTIES_RECORD, r#"["a"]"#)],
        ),
        (
            "own claims keys glint did not set",
            desired(|s| {
                s.properties = spec_properties(&[("a", "1")]);
                s.property_ownership = Some(ownership(&["legacy_*", "old"], &[]));
            }),
            image_carrying(&after, &[("legacy_x", "1"), ("old", "1"), ("other", "1")]),
            vec![
                PatchOp::RemoveProperty("legacy_x".into()),
                PatchOp::RemoveProperty("old".into()),
            ],
        ),
        (
            "own * leaves exactly the spec's keys, Glance's own keys and glint's marks",
            desired(|s| {
                s.properties = spec_properties(&[("a", "1")]);
                s.property_ownership = Some(ownership(&["*"], &[]));
            }),
            image_carrying(&after, &[("x", "1"), ("os_glance_importing_to_stores", "")]),
            vec![PatchOp::RemoveProperty("x".into())],
        ),
        (
            "ignore keeps a key glint set earlier and drops it from the record",
            desired(|s| {
                s.properties = spec_properties(&[("a", "1")]);
                s.property_ownership = Some(ownership(&[], &["b"]));
            }),
            image_carrying(&before, &[]),
            vec![set(PROPERTIES_RECORD, r#"["a"]"#)],
        ),
        (
            "ignore does not stop glint setting a key the spec lists",
            desired(|s| {
                s.properties = spec_properties(&[("a", "1"), ("os_distro", "debian")]);
                s.property_ownership = Some(ownership(&[], &["os_*"]));
            }),
            image_carrying(&after, &[]),
            vec![
                set(PROPERTIES_RECORD, r#"["a","os_distro"]"#),
                set("os_distro", "debian"),
            ],
        ),
        (
            "ignore beats own",
            desired(|s| {
                s.properties = spec_properties(&[("a", "1")]);
                s.property_ownership = Some(ownership(&["*"], &["site_*"]));
            }),
            image_carrying(&after, &[("site_rack", "4"), ("x", "1")]),
            vec![PatchOp::RemoveProperty("x".into())],
        ),
    ];
    for (what, desired, image, expected) in rows {
        assert_eq!(patch_ops(&desired, &image), expected, "{what}");
    }
}

#[test]
fn the_record_names_every_key_glint_writes_but_the_ownership_mark() {
    let mut wanted = desired(|s| s.properties = spec_properties(&[("b", "2"), ("a", "1")]));
    // The CLI adds its own mark after building the desired image: the record follows.
    wanted
        .properties
        .insert("glint.dev/applied-as".into(), "default/x".into());
    let request = wanted.new_image("id-1");
    assert_eq!(
        request
            .properties
            .get(PROPERTIES_RECORD)
            .map(String::as_str),
        Some(r#"["a","b","glint.dev/applied-as"]"#)
    );
    let created = image(|i| i.properties = request.properties.clone());
    assert_eq!(
        recorded_keys(&created),
        ["a", "b", "glint.dev/applied-as"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        patch_ops(&wanted, &created),
        [],
        "a new image is already in line"
    );
}

#[test]
fn keys_with_json_specials_survive_the_record() {
    let wanted = desired(|s| s.properties = spec_properties(&[("we\"ird,key]", "1")]));
    let image = image(|i| i.properties = wanted.properties_to_write());
    assert!(recorded_keys(&image).contains("we\"ird,key]"));
}
