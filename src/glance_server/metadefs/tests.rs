use serde_json::json;

use super::contents::Kind;
use super::*;
use crate::glance_server::listing::Query;

fn admin() -> Caller {
    Caller {
        project: Some("admins".into()),
        user: None,
        admin: true,
    }
}

fn member(project: &str) -> Caller {
    Caller {
        project: Some(project.into()),
        user: None,
        admin: false,
    }
}

fn at<'a>(caller: &'a Caller, now: &'a str) -> Context<'a> {
    Context {
        caller,
        now,
        cloud_owner: "local",
    }
}

const T1: &str = "2026-01-01T00:00:01Z";
const T2: &str = "2026-01-01T00:00:02Z";

/// A catalogue with a public namespace of project a and a private one of project b.
fn two_namespaces() -> Metadefs {
    let mut metadefs = Metadefs::default();
    metadefs.with_known_resource_types(T1);
    for (name, visibility, owner) in [("pub", "public", "a"), ("priv", "private", "b")] {
        metadefs
            .create(
                &at(&admin(), T1),
                &json!({"namespace": name, "visibility": visibility, "owner": owner}),
            )
            .expect(name);
    }
    metadefs
}

fn listed(metadefs: &Metadefs, caller: &Caller, query: &str) -> Vec<String> {
    let body = metadefs
        .list(&at(caller, T2), &Query::parse(query))
        .expect(query);
    body["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|namespace| namespace["namespace"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn a_caller_sees_public_namespaces_and_its_own_projects_and_an_administrator_all() {
    let metadefs = two_namespaces();
    let table: [(Caller, &[&str]); 4] = [
        (admin(), &["priv", "pub"]),
        (member("a"), &["pub"]),
        (member("b"), &["priv", "pub"]),
        (member("c"), &["pub"]),
    ];
    for (caller, expected) in table {
        assert_eq!(listed(&metadefs, &caller, ""), expected, "{caller:?}");
        for name in ["pub", "priv"] {
            let shown = metadefs.show(&at(&caller, T2), name, None);
            assert_eq!(shown.is_ok(), expected.contains(&name), "{caller:?} {name}");
            if let Err(hidden) = shown {
                assert_eq!(
                    hidden.reason(),
                    "NotFound",
                    "an unseen namespace is not found"
                );
            }
        }
    }
}

#[test]
fn only_an_administrator_changes_definitions_and_an_unseen_namespace_stays_not_found() {
    let mut metadefs = two_namespaces();
    let outsider = member("c");
    let context = at(&outsider, T2);
    let refused = [
        metadefs.create(&context, &json!({"namespace": "mine"})),
        metadefs.update(&context, "pub", &json!({"namespace": "pub"})),
        metadefs.create_in(&context, "pub", Kind::Tags, &json!({"tags": []}), false),
    ];
    for answer in refused {
        assert_eq!(answer.expect_err("member").reason(), "Forbidden");
    }
    assert_eq!(
        metadefs
            .delete(&context, "pub")
            .expect_err("member")
            .reason(),
        "Forbidden"
    );
    assert_eq!(
        metadefs
            .delete(&context, "priv")
            .expect_err("unseen")
            .reason(),
        "NotFound"
    );
    assert_eq!(
        listed(&metadefs, &admin(), ""),
        ["priv", "pub"],
        "nothing changed"
    );
}

#[test]
fn a_protected_namespace_keeps_itself_and_its_definitions_until_unprotected() {
    let mut metadefs = Metadefs::default();
    let caller = admin();
    let context = at(&caller, T1);
    metadefs
        .create(
            &context,
            &json!({"namespace": "kept", "protected": true, "tags": [{"name": "t"}],
                    "objects": [{"name": "o"}]}),
        )
        .expect("create");
    let refused = [
        metadefs.delete(&context, "kept"),
        metadefs.delete_in(&context, "kept", Kind::Tags, "t"),
        metadefs.delete_in(&context, "kept", Kind::Objects, "o"),
        metadefs.delete_all_in(&context, "kept", Kind::Tags),
    ];
    for answer in refused {
        assert_eq!(answer.expect_err("protected").reason(), "Forbidden");
    }
    // An update that leaves `protected` out unprotects it, as Glance's PUT replaces all.
    let updated = metadefs
        .update(&context, "kept", &json!({"namespace": "kept"}))
        .expect("update");
    assert_eq!(updated["protected"], false);
    metadefs
        .delete(&context, "kept")
        .expect("delete once unprotected");
    assert_eq!(
        metadefs
            .show(&context, "kept", None)
            .expect_err("gone")
            .reason(),
        "NotFound"
    );
}

#[test]
fn deleting_a_namespace_takes_its_objects_properties_tags_and_associations_along() {
    let mut metadefs = Metadefs::default();
    let caller = admin();
    let context = at(&caller, T1);
    let full = json!({
        "namespace": "n",
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
        "properties": {"cpu": {"title": "CPUs", "type": "integer"}},
        "objects": [{"name": "o", "required": ["cpu"]}],
        "tags": [{"name": "t"}],
    });
    let created = metadefs.create(&context, &full).expect("create");
    assert_eq!(created["properties"]["cpu"]["title"], "CPUs");
    assert_eq!(created["tags"], json!([{"name": "t"}]));
    metadefs.delete(&context, "n").expect("delete");
    metadefs
        .create(&context, &json!({"namespace": "n"}))
        .expect("again");
    let shown = metadefs.show(&context, "n", None).expect("show");
    for nested in [
        "resource_type_associations",
        "properties",
        "objects",
        "tags",
    ] {
        assert!(shown.get(nested).is_none(), "{nested} came back: {shown}");
    }
}

#[test]
fn names_are_unique_where_glance_keeps_them_unique() {
    let mut metadefs = two_namespaces();
    let caller = admin();
    let context = at(&caller, T2);
    let tag = json!({"tags": [{"name": "t"}]});
    metadefs
        .create_in(&context, "pub", Kind::Tags, &tag, false)
        .expect("tag");
    metadefs
        .create_in(&context, "pub", Kind::Objects, &json!({"name": "o"}), false)
        .expect("object");
    metadefs
        .create_in(
            &context,
            "pub",
            Kind::Objects,
            &json!({"name": "o2"}),
            false,
        )
        .expect("object 2");
    let property = json!({"name": "p", "title": "P", "type": "string"});
    metadefs
        .create_in(&context, "pub", Kind::Properties, &property, false)
        .expect("property");
    let clashes = [
        metadefs.create(&context, &json!({"namespace": "pub"})),
        metadefs.update(&context, "priv", &json!({"namespace": "pub"})),
        metadefs.create_in(&context, "pub", Kind::Properties, &property, false),
        metadefs.create_in(&context, "pub", Kind::Objects, &json!({"name": "o"}), false),
        metadefs.replace_in(&context, "pub", Kind::Objects, "o2", &json!({"name": "o"})),
        metadefs.add_tag(&context, "pub", "t"),
        metadefs.create_in(&context, "pub", Kind::Tags, &tag, true),
        metadefs.create_in(
            &context,
            "pub",
            Kind::ResourceTypes,
            &json!({"name": "OS::Nova::Flavor"}),
            false,
        ),
    ];
    // The association is new; each of the others is a conflict.
    let reasons: Vec<&str> = clashes
        .iter()
        .map(|answer| answer.as_ref().map_or_else(CloudError::reason, |_| "Ok"))
        .collect();
    assert_eq!(
        reasons,
        [
            "Conflict", "Conflict", "Conflict", "Conflict", "Conflict", "Conflict", "Conflict",
            "Ok"
        ]
    );
    let again = metadefs.create_in(
        &context,
        "pub",
        Kind::ResourceTypes,
        &json!({"name": "OS::Nova::Flavor"}),
        false,
    );
    assert_eq!(again.expect_err("twice").reason(), "Conflict");
}

#[test]
fn a_tag_list_replaces_the_tags_unless_it_is_appended() {
    let mut metadefs = two_namespaces();
    let caller = admin();
    let context = at(&caller, T2);
    let names = |metadefs: &Metadefs| -> Vec<String> {
        let body = metadefs.list_in(&context, "pub", Kind::Tags).expect("tags");
        let mut names: Vec<String> = body["tags"]
            .as_array()
            .expect("list")
            .iter()
            .map(|tag| tag["name"].as_str().expect("name").to_string())
            .collect();
        names.sort();
        names
    };
    let tags = |names: &[&str]| json!({"tags": names.iter().map(|name| json!({"name": name})).collect::<Vec<_>>()});
    metadefs
        .create_in(&context, "pub", Kind::Tags, &tags(&["a", "b"]), false)
        .expect("set");
    metadefs
        .create_in(&context, "pub", Kind::Tags, &tags(&["c"]), true)
        .expect("append");
    assert_eq!(names(&metadefs), ["a", "b", "c"]);
    metadefs
        .create_in(&context, "pub", Kind::Tags, &tags(&["d"]), false)
        .expect("replace");
    assert_eq!(names(&metadefs), ["d"]);
    let twice = metadefs.create_in(&context, "pub", Kind::Tags, &tags(&["e", "e"]), false);
    assert_eq!(twice.expect_err("twice").reason(), "Conflict");
    assert_eq!(names(&metadefs), ["d"], "a refused list changes nothing");
    let renamed = metadefs
        .replace_in(&context, "pub", Kind::Tags, "d", &json!({"name": "f"}))
        .expect("rename");
    assert_eq!(
        (renamed["name"].as_str(), renamed["updated_at"].as_str()),
        (Some("f"), Some(T2))
    );
    metadefs
        .delete_all_in(&context, "pub", Kind::Tags)
        .expect("delete all");
    metadefs
        .delete_all_in(&context, "pub", Kind::Tags)
        .expect("none left is not an error");
    assert!(names(&metadefs).is_empty());
}

#[test]
fn bodies_with_unknown_read_only_missing_or_overlong_fields_are_refused_with_what_to_fix() {
    let mut metadefs = two_namespaces();
    let caller = admin();
    let context = at(&caller, T2);
    let long = "x".repeat(81);
    let table = [
        (
            json!({"namespace": "n", "colour": "red"}),
            "BadRequest",
            "colour",
        ),
        (
            json!({"namespace": "n", "created_at": T1}),
            "Forbidden",
            "created_at",
        ),
        (
            json!({"display_name": "n"}),
            "BadRequest",
            "namespace is required",
        ),
        (json!({"namespace": long}), "BadRequest", "at most 80"),
        (
            json!({"namespace": "n", "visibility": "shared"}),
            "BadRequest",
            "public or private",
        ),
        (
            json!({"namespace": "n", "protected": "yes"}),
            "BadRequest",
            "true or false",
        ),
        (
            json!({"namespace": "n", "properties": {"p": {"title": "P", "type": "colour"}}}),
            "BadRequest",
            "type",
        ),
        (
            json!({"namespace": "n", "objects": [{"name": "o", "properties": {"p": {"type": "string"}}}]}),
            "BadRequest",
            "title",
        ),
        (json!(["n"]), "BadRequest", "JSON object"),
    ];
    for (body, reason, says) in table {
        let refused = metadefs
            .create(&context, &body)
            .expect_err(&body.to_string());
        assert_eq!(refused.reason(), reason, "{body}");
        assert!(refused.to_string().contains(says), "{body}: {refused}");
    }
    assert_eq!(
        listed(&metadefs, &caller, ""),
        ["priv", "pub"],
        "nothing half-made is left"
    );
}

#[test]
fn namespaces_are_listed_newest_first_in_pages_with_a_link_to_the_next() {
    let mut metadefs = Metadefs::default();
    let caller = admin();
    for name in ["a", "b", "c"] {
        metadefs
            .create(&at(&caller, T1), &json!({"namespace": name}))
            .expect(name);
    }
    assert_eq!(listed(&metadefs, &caller, ""), ["c", "b", "a"]);
    assert_eq!(
        listed(&metadefs, &caller, "sort_dir=asc&sort_key=namespace"),
        ["a", "b", "c"]
    );
    let first = metadefs
        .list(&at(&caller, T2), &Query::parse("limit=2"))
        .expect("page");
    let next = first["next"].as_str().expect("a next link");
    assert_eq!(next, "/v2/metadefs/namespaces?limit=2&marker=b");
    let rest = next.trim_start_matches("/v2/metadefs/namespaces?");
    assert_eq!(listed(&metadefs, &caller, rest), ["a"]);
    for query in [
        "limit=x",
        "sort_dir=up",
        "sort_key=colour",
        "visibility=shared",
    ] {
        let refused = metadefs
            .list(&at(&caller, T2), &Query::parse(query))
            .expect_err(query);
        assert_eq!(refused.reason(), "BadRequest", "{query}");
    }
}

#[test]
fn an_association_records_a_new_resource_type_and_shows_property_names_with_its_prefix() {
    let mut metadefs = two_namespaces();
    let caller = admin();
    let context = at(&caller, T2);
    let first = metadefs.resource_types()["resource_types"][0]["name"].clone();
    assert_eq!(first, "OS::Glance::Image");
    let association = json!({"name": "OS::Example::Thing", "prefix": "thing_"});
    metadefs
        .create_in(&context, "pub", Kind::ResourceTypes, &association, false)
        .expect("associate");
    let property = json!({"name": "size", "title": "Size", "type": "integer"});
    metadefs
        .create_in(&context, "pub", Kind::Properties, &property, false)
        .expect("property");
    let types = metadefs.resource_types();
    let names: Vec<&str> = types["resource_types"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|known| known["name"].as_str())
        .collect();
    assert!(names.contains(&"OS::Example::Thing"), "{names:?}");
    let shown = metadefs
        .show(&context, "pub", Some("OS::Example::Thing"))
        .expect("show");
    assert!(shown["properties"].get("thing_size").is_some(), "{shown}");
    assert!(
        metadefs.show(&context, "pub", None).expect("plain")["properties"]
            .get("size")
            .is_some()
    );
    assert_eq!(
        listed(&metadefs, &caller, "resource_types=OS::Example::Thing"),
        ["pub"]
    );
    metadefs
        .delete_in(&context, "pub", Kind::ResourceTypes, "OS::Example::Thing")
        .expect("dissociate");
    let again = metadefs.delete_in(&context, "pub", Kind::ResourceTypes, "OS::Example::Thing");
    assert_eq!(again.expect_err("gone").reason(), "NotFound");
}

#[test]
fn a_property_or_object_is_replaced_whole_and_renamed_by_its_body() {
    let mut metadefs = two_namespaces();
    let caller = admin();
    let context = at(&caller, T2);
    let property = json!({"name": "p", "title": "P", "type": "string", "enum": ["a"]});
    metadefs
        .create_in(&context, "pub", Kind::Properties, &property, false)
        .expect("create");
    let replaced = metadefs
        .replace_in(
            &context,
            "pub",
            Kind::Properties,
            "p",
            &json!({"name": "q", "title": "Q", "type": "string"}),
        )
        .expect("replace");
    assert_eq!(replaced["title"], "Q");
    assert_eq!(
        metadefs
            .show_in(&context, "pub", Kind::Properties, "p")
            .expect_err("renamed")
            .reason(),
        "NotFound"
    );
    assert!(
        metadefs
            .show_in(&context, "pub", Kind::Properties, "q")
            .expect("q")
            .get("enum")
            .is_none()
    );
    let object = json!({"name": "o", "description": "d", "required": ["q"]});
    metadefs
        .create_in(&context, "pub", Kind::Objects, &object, false)
        .expect("object");
    let replaced = metadefs
        .replace_in(&context, "pub", Kind::Objects, "o", &json!({"name": "o"}))
        .expect("replace object");
    assert!(replaced.get("description").is_none(), "{replaced}");
    assert_eq!(replaced["required"], json!([]));
}
