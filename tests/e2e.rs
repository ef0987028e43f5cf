//! End to end: the real `glint run` process against a real kube-apiserver (see
//! tests/common/cluster.rs) and the real Keystone + Glance test bed, driven with kubectl the
//! way a user would: CRD from crds/, manifests from deploy/examples/cluster/, edits, deactivation,
//! sharing, a controller killed and restarted mid-way, delete and detach, admission refusals.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::harness::free_port;
use common::kubectl::{GlintProcess, Kubectl};

use base64::Engine;
use glint::glance::{GlanceApi, GlanceClient, GlanceStatus, NewImage, Visibility};
use sha2::{Digest, Sha512};

fn step(text: &str) {
    eprintln!("e2e step: {text}");
}

fn keystone_client(
    bed: &common::Testbed,
    user: &str,
    password: &str,
    project: &str,
) -> GlanceClient {
    let yaml = format!(
        "clouds:\n  c:\n    region_name: {}\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {password}\n      user_domain_name: Default\n      project_name: {project}\n      project_domain_name: Default\n",
        bed.region, bed.keystone_url
    );
    let file = glint::auth::CloudsFile::from_bytes(yaml.as_bytes()).expect("yaml");
    GlanceClient::new(
        glint::auth::Authenticator::from_cloud(file.cloud("c").expect("cloud"), Default::default())
            .expect("auth"),
    )
}

fn example(name: &str, url: &str, sha512: &str) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/deploy/examples/cluster/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("example");
    // The examples point at the internet; here every source is the loopback file server.
    text.lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            if line.trim_start().starts_with("url: ") {
                format!("{indent}url: {url}")
            } else if line.trim_start().starts_with("value: \"0000") {
                format!("{indent}value: \"{sha512}\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn the_controller_runs_the_examples_end_to_end_against_a_real_apiserver() {
    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let namespace = common::unique("e2e")
        .chars()
        .take(50)
        .collect::<String>()
        .to_lowercase();
    let k = Kubectl {
        kubeconfig: cluster.kubeconfig.display().to_string(),
        namespace: namespace.clone(),
    };
    let demo = keystone_client(&bed, &bed.demo_user, &bed.demo_password, &bed.demo_project);
    let admin = keystone_client(
        &bed,
        &bed.admin_user,
        &bed.admin_password,
        &bed.admin_project,
    );
    let log = std::env::temp_dir().join(format!("{namespace}-glint.log"));
    eprintln!("glint's log: {}", log.display());

    step("glint run without the CRD says how to install it");
    let without_crd = Command::new(env!("CARGO_BIN_EXE_glint"))
        .args(["run", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", &k.kubeconfig)
        .output()
        .expect("glint run");
    let said = String::from_utf8_lossy(&without_crd.stderr);
    if k.run(&["get", "crd", "images.glint.dev"], None).0 {
        eprintln!("(the CRD was already installed in this cluster; skipping that check)");
    } else {
        assert!(
            !without_crd.status.success(),
            "glint run must refuse to start without its CRD"
        );
        assert!(said.contains("kubectl apply -f crds/"), "{said}");
    }

    step("install the CRD from crds/ and wait until it is Established");
    k.install_crd_and_namespace();

    step("the apiserver refuses bad manifests with a message that says what to fix");
    let bad = |spec: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: bad}}\nspec:\n  cloudCredentialsRef: {{secretName: s, cloudName: c}}\n{spec}"
        )
    };
    for (spec, expected) in [
        (
            "  diskFormat: raw\n  members: [p1]\n",
            "spec.members needs spec.visibility: shared",
        ),
        (
            "  diskFormat: raw\n  properties: {os_glance_x: \"v\"}\n",
            "must not set Glance's own keys",
        ),
        ("  managementPolicy: unmanaged\n", "needs spec.import"),
        ("  visibility: private\n", "needs spec.diskFormat"),
        ("  diskFormat: qcow3\n", "Unsupported value: \"qcow3\""),
        (
            "  diskFormat: raw\n  resyncPeriod: five minutes\n",
            "resyncPeriod",
        ),
        (
            "  diskFormat: raw\n  source: {url: ftp://x/y}\n",
            "http:// or https://",
        ),
        (
            "  diskFormat: raw\n  resyncPeriod: 100000000000000000000s\n",
            "resyncPeriod must be between 10s and 168h",
        ),
        (
            "  managementPolicy: unmanaged\n  import: {filter: {name: x}}\n  source: {url: https://x/y}\n  tags: [a]\n",
            "remove them: spec.tags spec.source",
        ),
    ] {
        let stderr = k.refused(&bad(spec));
        assert!(stderr.contains(expected), "{spec}: {stderr}");
    }

    step(
        "a Secret with clouds.yaml for the bed's Keystone, and a loopback file server as the source",
    );
    let clouds = bed.demo_cloud().replace("  bed:", "  mycloud:");
    let encoded = base64::engine::general_purpose::STANDARD.encode(clouds);
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: openstack}}\ndata:\n  clouds.yaml: {encoded}\n"));
    // Glance checks that the data matches diskFormat: the qcow2 examples get a real qcow2 file.
    let qcow2_path = std::env::temp_dir().join(format!("{namespace}.qcow2"));
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow2_path)
        .arg("64M")
        .status();
    assert!(made.is_ok_and(|s| s.success()), "qemu-img create");
    let data = std::fs::read(&qcow2_path).expect("qcow2");
    let _ = std::fs::remove_file(&qcow2_path);
    let sha512: String = Sha512::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (qcow2_port, raw_port) = (free_port(), free_port());
    let _qcow2_server = common::serve_file(qcow2_port, data.clone()).await;
    let _raw_server =
        common::serve_file(raw_port, common::pseudo_random_bytes(1024 * 1024, 77)).await;
    let url_for = |manifest: &str| {
        let port = if manifest.contains("diskFormat: raw") {
            raw_port
        } else {
            qcow2_port
        };
        format!("http://127.0.0.1:{port}/image.raw")
    };
    let ubuntu = admin
        .create_image(&NewImage {
            name: Some(common::unique("ubuntu")),
            visibility: Some(Visibility::Public),
            properties: [("os_distro".to_string(), "ubuntu".to_string())].into(),
            ..NewImage::default()
        })
        .await
        .expect("a public image for import-by-filter");

    step("start glint run against the apiserver");
    let controller = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);

    step("apply every manifest in deploy/examples/cluster/ and wait for Ready");
    let examples = [
        "minimal.yaml",
        "full.yaml",
        "import-by-filter.yaml",
        "shared-with-members.yaml",
        "deactivated.yaml",
    ];
    for name in examples {
        let raw = example(name, "", &sha512);
        k.apply(&example(name, &url_for(&raw), &sha512));
    }
    k.wait("image/cirros", "condition=Ready");
    k.wait("image/debian-12", "condition=Ready");
    k.wait("image/team-base", "condition=Ready");
    k.wait("image/centos-7-retired", "condition=Ready");
    k.wait("image/ubuntu-latest", "condition=Ready");
    for name in ["cirros", "debian-12", "ubuntu-latest"] {
        common::gitops::assert_gitops_view(name, &k.image(name), "Healthy", "Current");
    }
    // Each upload's end reconciled its Image at once rather than on its progress timer.
    let ended = controller.metric("glint_transfers_total").unwrap_or(0.0);
    assert!(ended >= 3.0, "the examples with a source were uploaded");
    assert_eq!(
        controller.metric("glint_transfer_wakeups_total"),
        Some(ended),
        "every transfer's end woke its Image"
    );

    step("check Glance after apply: data, fields, members, deactivation, import");
    let full = demo
        .get_image(&k.status_id("debian-12"))
        .await
        .expect("full");
    assert_eq!(
        (full.name.as_deref(), full.status),
        (Some("Debian 12 (bookworm)"), GlanceStatus::Active)
    );
    assert_eq!(full.size, Some(data.len() as u64));
    assert_eq!(full.tags, ["debian", "lts"]);
    assert!(full.protected);
    assert_eq!(
        full.properties.get("hw_scsi_model").map(String::as_str),
        Some("virtio-scsi")
    );
    let members = demo
        .list_members(&k.status_id("team-base"))
        .await
        .expect("members");
    assert_eq!(members.len(), 2);
    assert_eq!(
        demo.get_image(&k.status_id("centos-7-retired"))
            .await
            .expect("retired")
            .status,
        GlanceStatus::Deactivated
    );
    assert_eq!(k.status_id("ubuntu-latest"), ubuntu.id);
    let printed = k.ok(&["get", "images"]);
    assert!(
        printed.contains("GLANCE NAME") && printed.contains("Debian 12 (bookworm)"),
        "{printed}"
    );

    step("edit every mutable field of debian-12");
    k.ok(&["patch", "image", "debian-12", "--type", "merge", "-p",
        r#"{"spec":{"name":"Debian 12 (edited)","visibility":"shared","tags":["debian","edited"],"protected":false,"hidden":true,"minDiskGB":8,"minRamMB":1024,"properties":{"os_distro":"debian","os_version":"12.1","hw_disk_bus":null,"hw_scsi_model":null},"members":["1111111111111111aaaaaaaaaaaaaaaa"]}}"#]);
    k.wait("image/debian-12", "jsonpath={.status.observedGeneration}=2");
    k.wait("image/debian-12", "condition=Ready");
    let edited = demo.get_image(&full.id).await.expect("edited");
    assert_eq!(edited.name.as_deref(), Some("Debian 12 (edited)"));
    assert_eq!(
        (edited.visibility, edited.protected, edited.hidden),
        (Visibility::Shared, false, true)
    );
    assert_eq!((edited.min_disk, edited.min_ram), (8, 1024));
    assert_eq!(edited.tags, ["debian", "edited"]);
    assert_eq!(
        edited.properties.get("os_version").map(String::as_str),
        Some("12.1")
    );
    assert!(
        !edited.properties.contains_key("hw_disk_bus"),
        "properties left out of the spec are removed"
    );
    assert_eq!(demo.list_members(&full.id).await.expect("members").len(), 1);

    step("reactivate the retired image, then deactivate it again");
    k.ok(&[
        "patch",
        "image",
        "centos-7-retired",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"deactivated":false}}"#,
    ]);
    k.wait(
        "image/centos-7-retired",
        "jsonpath={.status.glance.status}=active",
    );
    k.ok(&[
        "patch",
        "image",
        "centos-7-retired",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"deactivated":true}}"#,
    ]);
    k.wait(
        "image/centos-7-retired",
        "jsonpath={.status.glance.status}=deactivated",
    );

    step("kill the controller (SIGKILL), change an Image meanwhile, start it again");
    controller.kill();
    k.ok(&[
        "patch",
        "image",
        "cirros",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"tags":["restarted"]}}"#,
    ]);
    common::gitops::assert_gitops_view(
        "cirros edited while glint is down",
        &k.image("cirros"),
        "Progressing",
        "InProgress",
    );
    let controller = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    k.wait("image/cirros", "jsonpath={.status.observedGeneration}=2");
    k.wait("image/cirros", "condition=Ready");
    let cirros_id = k.status_id("cirros");
    assert_eq!(
        demo.get_image(&cirros_id).await.expect("cirros").tags,
        ["restarted"]
    );

    step("delete (onDelete: delete) removes the image; detach and imports leave theirs");
    let retired_id = k.status_id("centos-7-retired");
    k.ok(&[
        "delete",
        "image",
        "cirros",
        "debian-12",
        "centos-7-retired",
        "ubuntu-latest",
        "--timeout=120s",
    ]);
    assert!(
        demo.get_image(&cirros_id)
            .await
            .expect_err("deleted")
            .is_not_found()
    );
    assert!(
        demo.get_image(&full.id)
            .await
            .expect_err("deleted")
            .is_not_found(),
        "unprotected, then deleted"
    );
    assert!(
        admin.get_image(&retired_id).await.is_ok(),
        "detached image stays"
    );
    assert!(
        admin.get_image(&ubuntu.id).await.is_ok(),
        "imported image stays"
    );

    step("a source on a refused address stalls with the rule that refused it");
    let minimal = |name: &str, secret: &str, extra: &str| {
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: {secret}, cloudName: mycloud}}\n  diskFormat: raw\n{extra}"
        )
    };
    let stalled_as = |reason: &str| {
        format!("jsonpath={{.status.conditions[?(@.type==\"Stalled\")].reason}}={reason}")
    };
    k.apply(&minimal(
        "metadata-thief",
        "openstack",
        &format!("  source: {{url: \"http://127.0.0.2:{raw_port}/image.raw\"}}\n"),
    ));
    k.wait("image/metadata-thief", &stalled_as("SourceNotAllowed"));
    let refused = k.image("metadata-thief");
    common::gitops::assert_gitops_view("metadata-thief", &refused, "Degraded", "Failed");
    assert!(
        common::gitops::argocd_health(&refused)
            .message
            .starts_with("SourceNotAllowed: "),
        "Argo CD shows the reason"
    );
    let message = refused["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Stalled"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("--source-deny-cidrs 127.0.0.2/32"),
        "{message}"
    );
    k.ok(&["delete", "image", "metadata-thief", "--timeout=60s"]);

    step("an Image whose Secret never existed is deleted at once");
    k.apply(&minimal("no-secret", "absent", ""));
    k.wait("image/no-secret", &stalled_as("SecretNotFound"));
    k.ok(&["delete", "image", "no-secret", "--timeout=20s"]);

    step(
        "a deletion blocked by a missing Secret says so, and ends by detach or by the Secret's return",
    );
    let secret_yaml = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ndata:\n  clouds.yaml: {encoded}\n"
        )
    };
    for (name, release) in [("blocked-detach", "detach"), ("blocked-restore", "restore")] {
        let secret = format!("{name}-creds");
        k.apply(&secret_yaml(&secret));
        k.apply(&minimal(name, &secret, ""));
        k.wait(&format!("image/{name}"), "condition=Ready");
        let id = k.status_id(name);
        k.ok(&["delete", "secret", &secret]);
        k.ok(&["delete", "image", name, "--wait=false"]);
        k.wait(&format!("image/{name}"), &stalled_as("DeletionBlocked"));
        let said = k.ok(&[
            "get",
            "image",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
        ]);
        assert!(
            said.contains("spec.onDelete: detach") && said.contains(&id),
            "{said}"
        );
        if release == "detach" {
            k.ok(&[
                "patch",
                "image",
                name,
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"onDelete":"detach"}}"#,
            ]);
        } else {
            k.apply(&secret_yaml(&secret));
        }
        k.ok(&[
            "wait",
            "--for=delete",
            &format!("image/{name}"),
            "--timeout=60s",
        ]);
        let left = demo.get_image(&id).await;
        if release == "detach" {
            assert!(left.is_ok(), "detach leaves the image: {left:?}");
            demo.delete(&id).await.expect("clean up");
        } else {
            assert!(left.expect_err("deleted").is_not_found());
        }
    }

    step("SIGTERM stops the controller cleanly");
    let team_base = k.status_id("team-base");
    let exit = controller.terminate();
    assert!(exit.success(), "glint exited with {exit}");

    for id in [retired_id, ubuntu.id, team_base] {
        let _ = admin
            .update_image(&id, &[glint::glance::PatchOp::SetProtected(false)])
            .await;
        let _ = admin.delete_if_exists(&id).await;
    }
    k.ok(&["delete", "image", "--all", "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_controller_killed_mid_decompression_converges_after_a_restart_with_one_image() {
    use common::sources::{Reply, SourceServer};
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let namespace = common::unique("e2e-kill")
        .chars()
        .take(50)
        .collect::<String>()
        .to_lowercase();
    let k = Kubectl {
        kubeconfig: cluster.kubeconfig.display().to_string(),
        namespace: namespace.clone(),
    };
    let demo = keystone_client(&bed, &bed.demo_user, &bed.demo_password, &bed.demo_project);
    let log = std::env::temp_dir().join(format!("{namespace}-glint.log"));
    eprintln!("glint's log: {}", log.display());
    k.install_crd_and_namespace();
    let clouds = bed.demo_cloud().replace("  bed:", "  mycloud:");
    let encoded = base64::engine::general_purpose::STANDARD.encode(clouds);
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: openstack}}\ndata:\n  clouds.yaml: {encoded}\n"));

    step("an xz source served slowly the first time, at full speed afterwards");
    let data = common::pseudo_random_bytes(3 << 20, 101);
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
    encoder.write_all(&data).expect("xz");
    let packed = encoder.finish().expect("xz");
    let sha256: String = sha2::Sha256::digest(&packed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let asked = AtomicUsize::new(0);
    let body = packed.clone();
    let server = SourceServer::start(move |_| {
        let reply = Reply::ok(body.clone());
        if asked.fetch_add(1, Ordering::SeqCst) == 0 {
            reply.slowly(32 * 1024, Duration::from_millis(100))
        } else {
            reply
        }
    })
    .await;
    k.apply(&format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: unpacking}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: mycloud}}\n  diskFormat: raw\n  source:\n    url: {}\n    decompress: xz\n    hash: {{algorithm: sha256, value: \"{sha256}\"}}\n",
        server.url("/image.raw.xz")
    ));

    step("start glint, and SIGKILL it once 1 MiB of the archive went through the decoder");
    let controller = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.body_bytes_sent() < 1 << 20 {
        assert!(Instant::now() < deadline, "the transfer never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    controller.kill();
    let uid = k.image("unpacking")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let id = k.status_id("unpacking");
    // The status the killed controller left: a transfer under way, which it will finish.
    common::gitops::assert_gitops_view(
        "unpacking, mid-transfer",
        &k.image("unpacking"),
        "Progressing",
        "InProgress",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.cut_off() == 0 {
        assert!(
            Instant::now() < deadline,
            "the killed process's download is still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let half = demo.get_image(&id).await.expect("the image");
    assert_ne!(
        half.status,
        GlanceStatus::Active,
        "half an archive never makes an active image"
    );

    step("start glint again: the same image gets the whole data, and no second one appears");
    let controller = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    k.wait("image/unpacking", "condition=Ready");
    assert_eq!(k.status_id("unpacking"), id, "the same Glance image");
    assert_eq!(
        common::harness::images_marked(&demo, &uid).await,
        1,
        "one image carries the object's uid"
    );
    let image = demo.get_image(&id).await.expect("image");
    assert_eq!(image.status, GlanceStatus::Active);
    assert_eq!(image.size, Some(data.len() as u64));
    let md5: String = md5::Md5::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(image.checksum.as_deref(), Some(md5.as_str()));
    assert_eq!(server.gets(), 2, "one download per process");

    step("delete the Image: the Glance image goes too");
    k.ok(&["delete", "image", "unpacking", "--timeout=60s"]);
    assert!(
        demo.get_image(&id)
            .await
            .expect_err("deleted")
            .is_not_found()
    );
    let exit = controller.terminate();
    assert!(exit.success(), "glint exited with {exit}");
}
