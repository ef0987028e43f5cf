//! `glint plan`, `glint apply` and `glint run` share one pass (`crate::pass`): plan runs
//! its first half and prints it; apply and the controller run all of it. Each scenario sets up
//! the Glance under test (the bed's, else the embedded cloud), asks the CLI's plan
//! (`apply::plan_all`), then runs one `pass::sync` with the inputs apply gives it and checks
//! the pass took exactly the steps plan printed. A read
//! or a rule added to one side only (as members once were read for imported images by plan
//! alone) shows up here as a difference.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::fault_proxy::{FaultProxy, Route};
use glint::apply::{self, Document};
use glint::glance::{GlanceApi, GlanceClient, NewImage, PatchOp, Visibility};
use glint::pass::observe::derived_id;
use glint::pass::plan::{Progress, Step};
use glint::pass::{self, PassResult};
use glint::transfer::{SourcePolicy, TransferManager, Transfers};
use serde_json::{Value, json};

/// The Image manifest `name` with `spec`, read the way `glint plan -f` reads files.
fn document(name: &str, mut spec: Value) -> Document {
    // The controller's; the CLI takes the cloud from its command line instead.
    spec["cloudCredentialsRef"] = json!({"secretName": "unused", "cloudName": "unused"});
    let dir = std::env::temp_dir().join(common::unique("glint-plan-pass"));
    std::fs::create_dir_all(&dir).expect("manifest folder");
    let path = dir.join("image.yaml");
    let manifest = json!({
        "apiVersion": "glint.dev/v1alpha1", "kind": "Image",
        "metadata": {"name": name, "namespace": "plan-pass"}, "spec": spec
    });
    // JSON is YAML.
    std::fs::write(&path, manifest.to_string()).expect("write manifest");
    let mut read = apply::manifests::read(&[path]).expect("a valid manifest");
    let _ = std::fs::remove_dir_all(&dir);
    read.images.pop().expect("one Image")
}

struct Pair {
    planned: Vec<Step>,
    planned_progress: Progress,
    passed: PassResult,
}

/// What plan prints for `document`, then what one pass does with apply's inputs.
async fn plan_then_pass(
    api: &Arc<GlanceClient>,
    transfers: &TransferManager<GlanceClient>,
    document: &Document,
) -> Pair {
    plan_then_pass_noting(api, transfers, document, || {}).await
}

/// [`plan_then_pass`], calling `between` once the plan is made and before the pass starts.
async fn plan_then_pass_noting(
    api: &Arc<GlanceClient>,
    transfers: &TransferManager<GlanceClient>,
    document: &Document,
    mut between: impl FnMut(),
) -> Pair {
    let mut plans = apply::plan_all(api.as_ref(), vec![document.clone()]).await;
    let plan = plans
        .pop()
        .expect("one plan")
        .outcome
        .unwrap_or_else(|err| panic!("plan failed: {err}"));
    between();
    let (uid, desired) = apply::pass_inputs(document);
    let first_id = derived_id(&uid, 0);
    let subject = apply::subject_of(&document.image.spec, &uid, &first_id);
    let passed = pass::sync(
        api.as_ref(),
        transfers,
        subject,
        &desired,
        &Default::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("pass failed: {err}"));
    Pair {
        planned: plan.steps,
        planned_progress: plan.progress,
        passed,
    }
}

/// Leaves nothing behind: stops the image's transfer, then deletes it.
async fn remove(api: &GlanceClient, transfers: &TransferManager<GlanceClient>, id: &str) {
    transfers.cancel(id);
    api.delete(id).await.expect("delete the test's image");
}

fn transfers_for(api: &Arc<GlanceClient>) -> TransferManager<GlanceClient> {
    let policy = SourcePolicy {
        allow_loopback: true,
        ..SourcePolicy::default()
    };
    TransferManager::new(api.clone(), 2, Arc::new(policy), Default::default())
        .expect("transfer manager")
}

#[tokio::test]
async fn a_new_image_with_a_source_is_planned_as_the_create_and_upload_one_pass_makes() {
    let bed = glance_under_test!();
    let api = Arc::new(bed.admin_of(&common::unique_project()));
    let transfers = transfers_for(&api);
    let port = common::harness::free_port();
    let _server = common::serve_file(port, common::pseudo_random_bytes(4096, 7)).await;
    let name = common::unique("plan-new");
    let document = document(
        &name,
        json!({"diskFormat": "raw", "source": {"url": format!("http://127.0.0.1:{port}/disk.raw")}}),
    );

    let pair = plan_then_pass(&api, &transfers, &document).await;
    assert_eq!(pair.planned, [Step::Create, Step::StartTransfer]);
    assert_eq!(
        pair.passed.steps, pair.planned,
        "the pass did what plan printed"
    );
    remove(&api, &transfers, &pair.passed.image.expect("created").id).await;
}

#[tokio::test]
async fn an_image_changed_outside_glint_is_planned_as_the_patch_and_member_changes_one_pass_makes()
{
    let bed = glance_under_test!();
    let project = common::unique_project();
    let api = Arc::new(bed.admin_of(&project));
    let transfers = transfers_for(&api);
    let (kept, stray) = (common::unique_project(), common::unique_project());
    let name = common::unique("plan-drift");
    let document = document(
        &name,
        json!({"diskFormat": "raw", "visibility": "shared", "tags": ["gold"], "members": [kept]}),
    );
    // Create, then add the member: two passes bring the image in line.
    let created = plan_then_pass(&api, &transfers, &document).await;
    assert_eq!(created.passed.steps, created.planned);
    let id = created.passed.image.as_ref().expect("created").id.clone();
    let shared = plan_then_pass(&api, &transfers, &document).await;
    assert_eq!(shared.passed.steps, shared.planned);
    assert_eq!(shared.planned, [Step::AddMember(kept.clone())]);

    // Someone else edits the image: other tags, a member glint did not add, the kept one gone.
    api.update_image(&id, &[PatchOp::SetTags(vec!["tin".into()])])
        .await
        .expect("retag");
    api.add_member(&id, &stray)
        .await
        .expect("add a stray member");
    api.remove_member(&id, &kept)
        .await
        .expect("remove the member");

    let drifted = plan_then_pass(&api, &transfers, &document).await;
    assert!(
        drifted.planned.contains(&Step::AddMember(kept.clone()))
            && drifted.planned.contains(&Step::RemoveMember(stray.clone()))
            && drifted.planned.len() == 3,
        "a tag patch and both member changes: {:?}",
        drifted.planned
    );
    assert_eq!(
        drifted.passed.steps, drifted.planned,
        "the pass did what plan printed"
    );
    assert_eq!(
        drifted.passed.progress,
        Progress::InSync,
        "one pass was all it took"
    );

    let settled = plan_then_pass(&api, &transfers, &document).await;
    assert_eq!(settled.planned, []);
    assert_eq!(settled.passed.steps, settled.planned);
    assert_eq!(settled.planned_progress, Progress::InSync);
    remove(&api, &transfers, &id).await;
}

#[tokio::test]
async fn an_imported_shared_image_is_planned_as_nothing_to_do_with_the_reads_the_pass_makes() {
    let bed = glance_under_test!();
    let project = common::unique_project();
    // Through a proxy that counts calls (it injects nothing here).
    let proxy = FaultProxy::start(&bed.glance_url).await;
    let api = Arc::new(bed.admin_of_via(&project, proxy.url()));
    let transfers = transfers_for(&api);
    let image = api
        .create_image(&NewImage {
            name: Some(common::unique("plan-imported")),
            visibility: Some(Visibility::Shared),
            ..NewImage::default()
        })
        .await
        .expect("an image made outside glint");
    api.add_member(&image.id, &common::unique_project())
        .await
        .expect("share it");
    let document = document(
        &common::unique("plan-import"),
        json!({"managementPolicy": "unmanaged", "import": {"id": image.id}}),
    );
    let reads = [
        Route::new("GET", "/v2/images/*"),
        Route::new("GET", "/v2/images/*/members"),
    ];
    let counts = || {
        reads
            .iter()
            .map(|route| proxy.seen(route))
            .collect::<Vec<_>>()
    };

    let before = counts();
    let mut after_plan = Vec::new();
    let pair = plan_then_pass_noting(&api, &transfers, &document, || after_plan = counts()).await;
    let after_pass = counts();

    let by = |from: &[u64], to: &[u64]| from.iter().zip(to).map(|(a, b)| b - a).collect::<Vec<_>>();
    assert_eq!(
        by(&before, &after_plan),
        [1, 0],
        "plan reads the image, and not the members of an image it only reports"
    );
    assert_eq!(
        by(&after_plan, &after_pass),
        by(&before, &after_plan),
        "the pass reads the same"
    );
    assert_eq!(pair.planned, []);
    assert_eq!(pair.passed.steps, pair.planned);
    assert_eq!(
        (pair.planned_progress, pair.passed.progress),
        (Progress::InSync, Progress::InSync)
    );
    assert!(pair.passed.imported);
    assert_eq!(
        pair.passed.image.map(|seen| seen.id),
        Some(image.id.clone()),
        "both report the imported image"
    );
    remove(&api, &transfers, &image.id).await;
}

/// A series lists its versions first, then runs each version's pass with the image it listed:
/// that pass acts without a second read, which would only delay the rename that makes a new
/// release current. An image listed under another id is no stand-in: the pass reads its own.
#[tokio::test]
async fn a_pass_given_the_image_just_listed_acts_on_it_without_reading_it_again() {
    let bed = glance_under_test!();
    let project = common::unique_project();
    let proxy = FaultProxy::start(&bed.glance_url).await;
    let api = Arc::new(bed.admin_of_via(&project, proxy.url()));
    let transfers = transfers_for(&api);
    let name = common::unique("plan-seen");
    let created = plan_then_pass(
        &api,
        &transfers,
        &document(&name, json!({"diskFormat": "raw"})),
    )
    .await
    .passed
    .image
    .expect("created");
    let other = api
        .create_image(&NewImage {
            name: Some(common::unique("plan-seen-other")),
            ..NewImage::default()
        })
        .await
        .expect("another image");
    let retagged = document(&name, json!({"diskFormat": "raw", "tags": ["gold"]}));
    let (uid, desired) = apply::pass_inputs(&retagged);
    let known = derived_id(&uid, 0);
    let (get_one, patch) = (
        Route::new("GET", "/v2/images/*"),
        Route::new("PATCH", "/v2/images/*"),
    );
    let access = Default::default();
    let pass_with = |seen| {
        let subject = pass::observe::Subject {
            seen,
            ..apply::subject_of(&retagged.image.spec, &uid, &known)
        };
        pass::sync(api.as_ref(), &transfers, subject, &desired, &access)
    };

    let reads = proxy.seen(&get_one);
    let passed = pass_with(Some(&created)).await.expect("pass");
    assert_eq!(proxy.seen(&get_one), reads, "no GET: {}", proxy.summary());
    assert_eq!(proxy.seen(&patch), 1, "the tag patch went out");
    assert_eq!(passed.image.expect("patched").tags, ["gold"]);
    assert_eq!(passed.progress, Progress::InSync);

    let passed = pass_with(Some(&other)).await.expect("pass");
    assert_eq!(proxy.seen(&get_one), reads + 1, "its own image read once");
    assert_eq!(passed.steps, [], "in sync since the last pass");
    assert_eq!(passed.image.expect("read").id, created.id);

    remove(&api, &transfers, &created.id).await;
    remove(&api, &transfers, &other.id).await;
}
