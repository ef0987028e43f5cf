//! End to end: the consumer's side of sharing. An admin project shares an image with the demo
//! project; a SharedImage in the demo team's namespace, with the demo project's own
//! credentials, accepts it and later rejects it, through the real `glint run`, a real
//! kube-apiserver and the Keystone-backed Glance.

mod common;

use common::harness::client_for;
use common::kubectl::{GlintProcess, Kubectl};
use glint::glance::{GlanceApi, MemberStatus, NewImage, Visibility};

fn admin_auth(bed: &common::Testbed) -> String {
    bed.demo_cloud()
        .replace(
            &format!("username: {}", bed.demo_user),
            &format!("username: {}", bed.admin_user),
        )
        .replace(
            &format!("password: {}", bed.demo_password),
            &format!("password: {}", bed.admin_password),
        )
        .replace(
            &format!("project_name: {}", bed.demo_project),
            &format!("project_name: {}", bed.admin_project),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_consumer_accepts_then_rejects_an_image_shared_with_it_using_its_own_credentials() {
    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let k = Kubectl::in_fresh_namespace(&cluster, "shared");
    let namespace = k.namespace.clone();
    // The consumer's namespace holds the consumer's (demo project's) credentials.
    k.install_with_cloud_secret(&bed.demo_cloud());
    k.wait("crd/sharedimages.glint.dev", "condition=Established");
    let log = std::env::temp_dir().join(format!("{namespace}-glint.log"));
    eprintln!("glint's log: {}", log.display());
    let _glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);

    // The producer: the admin project shares an image with the demo project.
    let producer = client_for(&admin_auth(&bed));
    let name = common::unique("base");
    let image = producer
        .create_image(&NewImage {
            name: Some(name.clone()),
            visibility: Some(Visibility::Shared),
            disk_format: Some(glint::glance::DiskFormat::Raw),
            container_format: Some(glint::glance::ContainerFormat::Bare),
            ..NewImage::default()
        })
        .await
        .expect("the producer's image");
    let owner = image.owner.clone().expect("owner");
    let manifest = |decision: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: SharedImage\nmetadata: {{name: base}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{name: {name}, owner: {owner}}}\n  decision: {decision}\n"
        )
    };

    // Not shared yet: glint says so and looks again.
    k.apply(&manifest("accepted"));
    k.wait(
        "sharedimage/base",
        "jsonpath={.status.conditions[?(@.type==\"Reconciling\")].reason}=NotShared",
    );

    producer
        .add_member(&image.id, &bed.demo_project_id)
        .await
        .expect("share with the demo project");
    let member_status = || async {
        producer
            .get_member(&image.id, &bed.demo_project_id)
            .await
            .expect("member")
            .status
    };
    assert_eq!(member_status().await, MemberStatus::Pending);
    // glint looks again on its own while the image is not shared (every 15 s at most).
    k.wait(
        "sharedimage/base",
        "jsonpath={.status.memberStatus}=accepted",
    );
    k.wait("sharedimage/base", "condition=Ready");
    common::gitops::assert_gitops_view(
        "sharedimage/base",
        &k.object("sharedimage/base"),
        "Healthy",
        "Current",
    );
    assert_eq!(member_status().await, MemberStatus::Accepted);
    assert_eq!(
        k.ok(&["get", "sharedimage/base", "-o", "jsonpath={.status.id}"]),
        image.id
    );

    k.apply(&manifest("rejected"));
    k.wait(
        "sharedimage/base",
        "jsonpath={.status.memberStatus}=rejected",
    );
    assert_eq!(member_status().await, MemberStatus::Rejected);
    let events = k.ok(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert!(
        events.contains("Accepted") && events.contains("Rejected"),
        "{events}"
    );

    let refused = k.refused(
        "apiVersion: glint.dev/v1alpha1\nkind: SharedImage\nmetadata: {name: both}\nspec:\n  cloudCredentialsRef: {secretName: cloud, cloudName: bed}\n  image: {id: 1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f, name: x}\n",
    );
    assert!(refused.contains("exactly one of id and name"), "{refused}");
    producer.delete(&image.id).await.expect("cleanup");
}
