//! The Argo CD health script (deploy/argocd/health.lua) run by the real Lua 5.1 on every shape
//! of status glint writes, beside kstatus' verdict on the same object. The end-to-end suites
//! run the same checks on objects a real controller left in a real apiserver.

mod common;

use common::gitops::{Health, argocd_health, kstatus, lua_literal};
use serde_json::{Value, json};

fn condition(kind: &str, status: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-12-03T10:00:00Z",
    })
}

/// An Image at `generation` whose status was written for `observed`, with Ready, Reconciling
/// and Stalled as given (reason and message of each).
fn image(generation: i64, observed: i64, ready: bool, reconciling: bool, stalled: bool) -> Value {
    json!({
        "apiVersion": "glint.dev/v1alpha1",
        "kind": "Image",
        "metadata": {"name": "cirros", "namespace": "ns", "generation": generation},
        "spec": {"diskFormat": "raw"},
        "status": {
            "observedGeneration": observed,
            "conditions": [
                condition("Ready", ready, if ready { "Synced" } else { "Uploading" }, "the message", observed),
                condition("Reconciling", reconciling, if reconciling { "Uploading" } else { "Idle" }, "uploading 40%", observed),
                condition("Stalled", stalled, if stalled { "SourceNotAllowed" } else { "Idle" }, "127.0.0.2 is refused", observed),
            ],
        },
    })
}

fn health(status: &str, message: &str) -> Health {
    Health {
        status: status.to_string(),
        message: message.to_string(),
    }
}

#[test]
#[ignore = "needs lua5.1 (Debian's lua5.1): scripts/test installs it (see tests/README.md)"]
fn each_status_glint_writes_gets_the_argocd_health_and_kstatus_it_means() {
    let mut no_status = image(1, 1, false, false, false);
    no_status.as_object_mut().unwrap().remove("status");
    let mut deleting = image(1, 1, true, false, false);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-03T10:05:00Z");
    let mut stale_ready = image(3, 3, true, false, false);
    stale_ready["status"]["conditions"][0]["observedGeneration"] = json!(2);
    let cases = [
        (
            "ready",
            image(2, 2, true, false, false),
            health("Healthy", "Synced: the message"),
            "Current",
        ),
        (
            "transferring",
            image(1, 1, false, true, false),
            health("Progressing", "Uploading: uploading 40%"),
            "InProgress",
        ),
        (
            "stalled",
            image(1, 1, false, false, true),
            health("Degraded", "SourceNotAllowed: 127.0.0.2 is refused"),
            "Failed",
        ),
        (
            "edited, not yet seen",
            image(3, 2, true, false, false),
            health("Progressing", "Waiting for glint to act on generation 3"),
            "InProgress",
        ),
        (
            "stalled on an older generation",
            image(3, 2, false, false, true),
            health("Progressing", "Waiting for glint to act on generation 3"),
            "InProgress",
        ),
        (
            "a Ready condition older than its status",
            stale_ready,
            health("Progressing", "Synced: the message"),
            "Current",
        ),
        (
            "no status yet",
            no_status,
            health("Progressing", "Waiting for glint to report status"),
            // kstatus has nothing to go on before the first status; glint writes one in its
            // first pass, so this lasts until then.
            "Current",
        ),
        (
            "being deleted",
            deleting,
            health(
                "Progressing",
                "Being deleted: glint is removing or releasing the Glance image first",
            ),
            "Terminating",
        ),
    ];
    for (what, object, want_health, want_kstatus) in cases {
        assert_eq!(argocd_health(&object), want_health, "{what}");
        assert_eq!(kstatus(&object), want_kstatus, "{what}");
    }
}

#[test]
#[ignore = "needs lua5.1 (Debian's lua5.1): scripts/test installs it (see tests/README.md)"]
fn messages_with_quotes_newlines_and_unicode_reach_argocd_unchanged() {
    let message = "Glance said \"409\"\\ retry\n\tat 10:00 — ünïcode ✓";
    let mut object = image(1, 1, false, false, true);
    object["status"]["conditions"][2]["message"] = json!(message);
    assert_eq!(
        argocd_health(&object).message,
        format!("SourceNotAllowed: {message}")
    );
    assert_eq!(lua_literal(&json!([1, "a", null])), "{1, \"a\", nil}");
}

#[test]
fn the_argocd_configmap_carries_the_health_script_for_every_kind() {
    let script = std::fs::read_to_string(common::gitops::HEALTH_SCRIPT).expect("health.lua");
    let patch: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/argocd/argocd-cm.yaml"
        ))
        .expect("argocd-cm.yaml"),
    )
    .expect("argocd-cm.yaml is YAML");
    assert_eq!(patch["metadata"]["name"], "argocd-cm");
    for kind in ["Image", "ImageSeries", "SharedImage"] {
        let key = format!("resource.customizations.health.glint.dev_{kind}");
        assert_eq!(
            patch["data"][&key].as_str(),
            Some(script.as_str()),
            "{key} differs from deploy/argocd/health.lua: run scripts/generate"
        );
    }
}
