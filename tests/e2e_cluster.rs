//! End to end, for operators: the Helm chart installed into a real kube-apiserver with exactly
//! the rights glint needs, and two `glint run` processes sharing the leader Lease, the leader
//! killed with SIGKILL and the standby taking over.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::kubectl::{GlintProcess, Kubectl};
use glint::glance::{GlanceApi, GlanceClient};

use common::kubectl::fresh_namespace as namespace;
use common::tools::helm;

#[test]
#[ignore = "needs an apiserver and helm: scripts/test provides them (see tests/README.md)"]
fn the_helm_chart_installs_with_exactly_the_rights_glint_needs() {
    let helm = helm();
    let cluster = common::cluster::cluster();
    let release_ns = namespace("glint-system");
    let team = namespace("team");
    let k = Kubectl {
        kubeconfig: cluster.kubeconfig.display().to_string(),
        namespace: release_ns.clone(),
    };
    k.ok(&["create", "namespace", &team]);
    let installed = Command::new(&helm)
        .args([
            "install",
            "glint",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/glint"),
        ])
        .args(["--namespace", &release_ns, "--create-namespace"])
        .args(["--kubeconfig", &k.kubeconfig])
        .args(["--set", "networkPolicy.enabled=true"])
        .output()
        .expect("helm install");
    assert!(
        installed.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let deployment = k.ok(&["get", "deployment", "glint", "-o", "json"]);
    let deployment: serde_json::Value = serde_json::from_str(&deployment).expect("json");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    // Conversions write to an emptyDir sized for `transfers` (2) of them at 20Gi each, plus
    // 20Gi for the downloads an Image's targets share: the only writable place under a
    // read-only root filesystem.
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["name"], "scratch");
    assert_eq!(pod["volumes"][0]["emptyDir"]["sizeLimit"], "60Gi");
    let container = &pod["containers"][0];
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/scratch");
    let env = |name: &str| {
        container["env"]
            .as_array()
            .and_then(|vars| vars.iter().find(|var| var["name"] == name))
            .map(|var| var["value"].clone())
    };
    assert_eq!(env("GLINT_CONVERSION_SCRATCH_DIR"), Some("/scratch".into()));
    assert_eq!(env("GLINT_CONVERSION_SCRATCH_LIMIT"), Some("20Gi".into()));
    k.ok(&["get", "poddisruptionbudget", "glint"]);
    k.ok(&["get", "networkpolicy", "glint"]);
    k.ok(&["get", "crd", "images.glint.dev"]);

    let account = format!("system:serviceaccount:{release_ns}:glint");
    // (verb, resource, namespace, allowed): what glint does, and the nearest things it must not.
    let table: &[(&str, &str, &str, bool)] = &[
        ("list", "images.glint.dev", &team, true),
        ("watch", "images.glint.dev", &team, true),
        ("get", "images.glint.dev", &team, true),
        ("patch", "images.glint.dev", &team, true),
        ("patch", "images.glint.dev/status", &team, true),
        ("watch", "imageseries.glint.dev", &team, true),
        ("patch", "imageseries.glint.dev", &team, true),
        ("patch", "imageseries.glint.dev/status", &team, true),
        ("create", "imageseries.glint.dev", &team, false),
        ("watch", "sharedimages.glint.dev", &team, true),
        ("patch", "sharedimages.glint.dev/status", &team, true),
        ("patch", "sharedimages.glint.dev", &team, false),
        ("update", "sharedimages.glint.dev/status", &team, false),
        ("delete", "imageseries.glint.dev", &team, false),
        ("get", "secrets", &team, true),
        ("list", "secrets", &team, true),
        ("watch", "secrets", &team, true),
        ("create", "events.events.k8s.io", &team, true),
        ("patch", "events.events.k8s.io", &team, true),
        ("get", "leases.coordination.k8s.io", &release_ns, true),
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("patch", "leases.coordination.k8s.io", &release_ns, true),
        ("create", "images.glint.dev", &team, false),
        ("delete", "images.glint.dev", &team, false),
        ("update", "images.glint.dev", &team, false),
        ("create", "secrets", &team, false),
        ("update", "secrets", &team, false),
        ("delete", "secrets", &team, false),
        ("get", "leases.coordination.k8s.io", &team, false),
        ("delete", "leases.coordination.k8s.io", &release_ns, false),
        ("create", "pods", &team, false),
        ("get", "configmaps", &team, true),
        ("list", "configmaps", &team, false),
        ("update", "configmaps", &team, false),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            "",
            false,
        ),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            "",
            false,
        ),
    ];
    println!("kubectl auth can-i as {account}:");
    println!(
        "  {:<8} {:<50} {:<12} answer",
        "verb", "resource", "namespace"
    );
    for (verb, resource, namespace, allowed) in table {
        // `TYPE/NAME` is an object's name to kubectl: a subresource needs --subresource.
        let (kind, subresource) = match resource.split_once('/') {
            Some((kind, sub)) if kind.ends_with(".glint.dev") => (kind, Some(sub)),
            _ => (*resource, None),
        };
        let mut args = vec!["auth", "can-i", verb, kind, "--as", &account];
        if let Some(subresource) = subresource {
            args.extend(["--subresource", subresource]);
        }
        if !namespace.is_empty() {
            args.extend(["--namespace", namespace]);
        }
        let out = Command::new("kubectl")
            .args(["--kubeconfig", &k.kubeconfig])
            .args(&args)
            .output()
            .expect("kubectl auth can-i");
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let shown_namespace = if *namespace == release_ns {
            "(release)"
        } else if namespace.is_empty() {
            "(cluster)"
        } else {
            "(team)"
        };
        println!("  {verb:<8} {resource:<50} {shown_namespace:<12} {answer}");
        assert_eq!(
            answer == "yes",
            *allowed,
            "can-i {verb} {resource} in {namespace:?} answered {answer:?}"
        );
    }
    let _ = Command::new(&helm)
        .args([
            "uninstall",
            "glint",
            "--namespace",
            &release_ns,
            "--kubeconfig",
            &k.kubeconfig,
        ])
        .output();
}

fn wait_for_leader(processes: &[&GlintProcess], within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(index) = processes
            .iter()
            .position(|process| process.metric("glint_leader") == Some(1.0))
        {
            return Some(index);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_standby_takes_over_within_seconds_when_the_leader_is_killed() {
    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let ns = namespace("lease");
    let k = Kubectl {
        kubeconfig: cluster.kubeconfig.display().to_string(),
        namespace: ns.clone(),
    };
    k.install_crd_and_namespace();
    let clouds = bed.demo_cloud();
    k.ok(&[
        "create",
        "secret",
        "generic",
        "openstack",
        "--from-literal",
        &format!("clouds.yaml={clouds}"),
    ]);
    let log = std::env::temp_dir().join(format!("{ns}-glint.log"));
    eprintln!("glint's log: {}", log.display());
    let first = GlintProcess::start(&k.kubeconfig, &ns, &log, &[]);
    let second = GlintProcess::start(&k.kubeconfig, &ns, &log, &[]);
    let leader =
        wait_for_leader(&[&first, &second], Duration::from_secs(30)).expect("one of the two leads");
    let (leader, mut standby) = if leader == 0 {
        (first, second)
    } else {
        (second, first)
    };
    // The standby may still be starting its metrics server when the leader already leads.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut standby_says = standby.metric("glint_leader");
    while standby_says.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        standby_says = standby.metric("glint_leader");
    }
    assert_eq!(standby_says, Some(0.0), "only one leads");
    // Both are ready: the leader once its caches synced, the standby to take over.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(leader.is_ready() && standby.is_ready()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(leader.is_ready(), "the leader's /readyz");
    assert!(standby.is_ready(), "the standby's /readyz");

    let names: Vec<String> = (0..6).map(|i| format!("img-{i}")).collect();
    for name in &names {
        k.apply(&format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n  tags: [first]\n"
        ));
    }
    for name in &names {
        k.wait(&format!("image/{name}"), "condition=Ready");
    }
    assert_eq!(
        standby.metric("glint_reconciles_total").unwrap_or(0.0),
        0.0,
        "the standby did no work"
    );

    let killed_at = Instant::now();
    drop(leader); // SIGKILL
    let took_over = wait_for_leader(&[&standby], Duration::from_secs(30));
    let takeover = killed_at.elapsed();
    assert!(took_over.is_some(), "the standby never took over");
    println!(
        "leader takeover after SIGKILL: {:.1} s",
        takeover.as_secs_f64()
    );
    assert!(standby.is_running());

    // The new leader works: an edit reaches Glance.
    k.ok(&[
        "patch",
        "image",
        "img-0",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"tags":["second"]}}"#,
    ]);
    k.wait("image/img-0", "jsonpath={.status.observedGeneration}=2");
    k.wait("image/img-0", "condition=Ready");

    let file = glint::auth::CloudsFile::from_bytes(clouds.as_bytes()).expect("yaml");
    let api = GlanceClient::new(
        glint::auth::Authenticator::from_cloud(
            file.cloud("bed").expect("cloud"),
            Default::default(),
        )
        .expect("auth"),
    );
    let edited = api.get_image(&k.status_id("img-0")).await.expect("image");
    assert_eq!(edited.tags, ["second"]);
    let mut duplicates = 0;
    for name in &names {
        let uid = k.ok(&["get", "image", name, "-o", "jsonpath={.metadata.uid}"]);
        duplicates += common::harness::images_marked(&api, uid.trim())
            .await
            .saturating_sub(1);
    }
    assert_eq!(duplicates, 0, "no image was created twice");

    k.ok(&["delete", "images", "--all", "--timeout=120s"]);
    let scrape = standby.scrape().unwrap_or_default();
    assert!(scrape.contains("glint_leader 1"), "{scrape}");
    assert!(
        scrape.contains("glint_kubernetes_writes_total{"),
        "{scrape}"
    );
    println!("/metrics of the new leader after the run:\n{scrape}");
    let exit = standby.terminate();
    assert!(exit.success(), "glint exited with {exit}");
}
