//! What deploy/ ships, checked with the tools users run it with: the Helm chart (lint, render
//! per values combination, schema refusals, package), and the alerts and dashboard (promtool).
//! Installing the chart into a real apiserver is e2e_cluster's job.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/glint");

fn chart_file(name: &str) -> PathBuf {
    Path::new(CHART).join(name)
}

/// Runs a tool; (success, stdout, stderr).
fn run(tool: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{tool}: {err}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `helm template` with `--set` values: the rendered documents.
fn render(helm: &str, sets: &[&str]) -> Result<Vec<Value>, String> {
    let mut args = vec!["template", "glint", CHART, "--namespace", "glint-system"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, stdout, stderr) = run(helm, &args);
    if !ok {
        return Err(stderr);
    }
    let mut documents = Vec::new();
    for document in stdout.split("\n---") {
        let value: Value = serde_saphyr::from_str(document).map_err(|err| err.to_string())?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn kinds(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .filter_map(|doc| doc["kind"].as_str().map(str::to_string))
        .collect()
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|doc| doc["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(documents)))
}

#[test]
#[ignore = "needs helm and promtool: scripts/test provides them (see tests/README.md)"]
fn the_chart_lints_strictly_and_packages_with_its_schema_alerts_dashboard_and_crds() {
    let helm = common::tools::helm();
    let (ok, stdout, stderr) = run(&helm, &["lint", "--strict", CHART]);
    assert!(ok, "helm lint --strict: {stdout}{stderr}");
    let out = std::env::temp_dir().join(common::unique("glint-chart"));
    std::fs::create_dir_all(&out).unwrap();
    let (ok, stdout, stderr) = run(
        &helm,
        &["package", CHART, "--destination", out.to_str().unwrap()],
    );
    assert!(ok, "helm package: {stdout}{stderr}");
    let package = out.join("glint-0.1.0.tgz");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&package)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in [
        "glint/values.schema.json",
        "glint/files/alerts.yaml",
        "glint/files/dashboard.json",
        "glint/crds/images.glint.dev.yaml",
        "glint/crds/imageseries.glint.dev.yaml",
        "glint/crds/sharedimages.glint.dev.yaml",
        "glint/templates/monitoring.yaml",
    ] {
        assert!(
            listing.lines().any(|line| line == file),
            "{file} not in the package:\n{listing}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
#[ignore = "needs helm and promtool: scripts/test provides them (see tests/README.md)"]
fn each_values_combination_renders_the_objects_it_promises() {
    let helm = common::tools::helm();
    let defaults = render(&helm, &[]).expect("defaults render");
    let default_kinds = kinds(&defaults);
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(
            default_kinds.iter().any(|k| k == kind),
            "defaults lack {kind}: {default_kinds:?}"
        );
    }
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "NetworkPolicy",
    ] {
        assert!(
            !default_kinds.iter().any(|k| k == kind),
            "defaults render {kind}"
        );
    }

    // Per watched namespace: a Role and RoleBinding in each, no ClusterRole for Images.
    let namespaced = render(&helm, &["watchNamespaces={team-a,team-b}"]).expect("render");
    let bindings: Vec<&str> = namespaced
        .iter()
        .filter(|doc| doc["kind"] == "RoleBinding")
        .filter_map(|doc| doc["metadata"]["namespace"].as_str())
        .collect();
    for namespace in ["team-a", "team-b"] {
        assert!(
            bindings.contains(&namespace),
            "no RoleBinding in {namespace}: {bindings:?}"
        );
    }
    let args =
        find(&namespaced, "Deployment")["spec"]["template"]["spec"]["containers"][0].to_string();
    assert!(
        args.contains("team-a,team-b"),
        "the namespaces reach glint: {args}"
    );

    // Monitoring: the ServiceMonitor, the alerts as a PrometheusRule, the dashboard ConfigMap.
    let monitoring = render(
        &helm,
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.labels.release=kps",
            "metrics.grafanaDashboard.enabled=true",
            "metrics.grafanaDashboard.namespace=monitoring",
        ],
    )
    .expect("render");
    find(&monitoring, "ServiceMonitor");
    let rule = find(&monitoring, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    let shipped: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_file("files/alerts.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        rule["spec"], shipped,
        "the PrometheusRule is files/alerts.yaml as it is"
    );
    let dashboard = find(&monitoring, "ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dashboard["data"]["glint.json"].as_str().unwrap())
        .expect("the dashboard ConfigMap holds JSON");
    assert_eq!(json["uid"], "glint-overview");

    // The network policy, and the scratch volume sized for the transfers.
    let locked = render(
        &helm,
        &[
            "networkPolicy.enabled=true",
            "transfers=3",
            "conversion.scratchLimit=10Gi",
        ],
    )
    .expect("render");
    find(&locked, "NetworkPolicy");
    let volumes = find(&locked, "Deployment")["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("\"sizeLimit\":\"40Gi\""),
        "(3 + 1) x 10Gi of scratch: a limit per conversion and one for shared downloads: {volumes}"
    );
}

#[test]
#[ignore = "needs helm and promtool: scripts/test provides them (see tests/README.md)"]
fn wrong_values_fail_with_a_message_naming_the_value() {
    let helm = common::tools::helm();
    for (set, expected) in [
        (
            "concurency=8",
            "additional properties 'concurency' not allowed",
        ),
        ("transfers=0", "/transfers': minimum: got 0, want 1"),
        ("resyncPeriod=five minutes", "/resyncPeriod"),
        ("conversion.scratchLimit=1.5Gi", "/conversion/scratchLimit"),
        (
            "image.pullPolicy=Sometimes",
            "/image/pullPolicy': value must be one of",
        ),
        (
            "sourcePolicy.denyCIDRs={not-a-range}",
            "/sourcePolicy/denyCIDRs/0",
        ),
        (
            "metrics.serviceMonitor.enabled=yes",
            "got string, want boolean",
        ),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        (
            "metrics.prometheusRule.enabeld=true",
            "'enabeld' not allowed",
        ),
    ] {
        match render(&helm, &[set]) {
            Ok(_) => panic!("--set {set} rendered"),
            Err(stderr) => assert!(stderr.contains(expected), "--set {set}: {stderr}"),
        }
    }
}

#[test]
#[ignore = "needs helm and promtool: scripts/test provides them (see tests/README.md)"]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = common::tools::promtool();
    let rules = chart_file("files/alerts.yaml");
    let (ok, stdout, stderr) = run(&promtool, &["check", "rules", rules.to_str().unwrap()]);
    assert!(ok, "promtool check rules: {stdout}{stderr}");
    assert!(stdout.contains("SUCCESS: 5 rules found"), "{stdout}");
    let tests = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts_test.yaml"
    );
    let (ok, stdout, stderr) = run(&promtool, &["test", "rules", tests]);
    assert!(ok, "promtool test rules: {stdout}{stderr}");
}

/// Every PromQL expression of the dashboard's panels, with Grafana's variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(chart_file("files/dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            queries.push((title.clone(), expr.replace("$__rate_interval", "5m")));
        }
    }
    queries
}

#[test]
#[ignore = "needs helm and promtool: scripts/test provides them (see tests/README.md)"]
fn the_dashboard_queries_parse_and_name_only_metrics_glint_exports() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{} queries", queries.len());
    // The names glint's registry declares (# TYPE lines), with the suffixes series carry. A
    // family shows only once it has a series, so give each one.
    let metrics = glint::metrics::Metrics::new();
    metrics.reconciled(glint::metrics::results::OK, Duration::from_millis(1));
    metrics.count_write("patch", "images".into());
    metrics.set_census(Box::new(|| [(("True".into(), "Synced".into()), 1)].into()));
    metrics.transfers.finished(Duration::from_secs(1), None);
    metrics.series.record("ns", "series", 1, Some(1.0));
    glint::metrics::glance_metrics().observe("show image", Some(200), Duration::from_millis(1));
    let exposition = metrics.render();
    let declared: Vec<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    let metric = regex::Regex::new(r"\bglint_[a-z_]+").unwrap();
    for (title, expr) in &queries {
        for name in metric.find_iter(expr).map(|found| found.as_str()) {
            let base = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                declared.contains(&base) || declared.contains(&name),
                "panel {title:?} reads {name}, which glint does not export ({declared:?})"
            );
        }
    }
    // promtool parses PromQL only inside rule files: check each query as a recording rule.
    let promtool = common::tools::promtool();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, (_, expr)) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{index}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let file = std::env::temp_dir().join(format!("{}.yaml", common::unique("glint-dashboard")));
    std::fs::write(&file, rules).unwrap();
    let (ok, stdout, stderr) = run(&promtool, &["check", "rules", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(
        ok,
        "a dashboard query is not valid PromQL: {stdout}{stderr}"
    );
}
