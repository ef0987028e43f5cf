//! Sovereign Cloud Stack's image metadata standard (SCS-0102): `glint plan` names the rules a
//! manifest would break before anything is published, and a series stamps the standard's
//! properties on each version, read back with the real python-openstackclient.

// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::mirror::{Mirror, SeriesCli};
use serde_json::Value;

/// `YYYYMMDD` of `days` ago: release versions as Ubuntu's serials name them, near enough to
/// today that a weekly replace_frequency holds whenever the test runs.
fn serial(days_ago: i64) -> String {
    let day = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * days_ago))
        .expect("a date")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    day.strftime("%Y%m%d").to_string()
}

fn dashed(serial: &str) -> String {
    format!("{}-{}-{}", &serial[..4], &serial[4..6], &serial[6..])
}

fn standard_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|line| line.trim_start().strip_prefix("? SCS-0102 "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_every_rule_a_public_image_without_the_standards_properties_breaks() {
    let bed = glance_under_test!();
    let run = SeriesCli::with_bed(&bed);
    let manifest = run.dir.join("image.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {name: bare}\nspec:\n  cloudCredentialsRef: {secretName: openstack, cloudName: bed}\n  visibility: community\n  diskFormat: qcow2\n  properties: {os_distro: ubuntu, hw_disk_bus: ide}\n  source: {url: 'https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img'}\n",
    )
    .expect("manifest");
    let path = manifest.display().to_string();
    let (code, out) = tokio::task::block_in_place(|| run.run(&["plan", "-f", &path]));
    eprintln!("{out}");
    assert_eq!(
        code,
        Some(2),
        "a change to make, and the rules are advice: {out}"
    );
    let said = standard_lines(&out);
    let about: Vec<&str> = said
        .iter()
        .map(|line| line.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        about,
        [
            "architecture",
            "min_disk",
            "min_ram",
            "os_version",
            "hw_disk_bus",
            "image_source",
            "image_build_date",
            "image_original_user",
            "image_description",
            "replace_frequency",
            "provided_until",
            "uuid_validity"
        ],
        "{out}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("\"ide\"") && l.contains("spec.properties.hw_disk_bus")),
        "each line says what to change: {out}"
    );

    // The same image kept private is not the standard's concern.
    let private = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("visibility: community", "visibility: private");
    std::fs::write(&manifest, private).expect("manifest");
    let (_, out) = tokio::task::block_in_place(|| run.run(&["plan", "-f", &path]));
    assert_eq!(standard_lines(&out), Vec::<&str>::new(), "{out}");
}

/// `openstack --os-cloud bed ARGS` with the run's clouds.yaml.
fn openstack(venv: &str, clouds: &Path, args: &[&str]) -> String {
    let output = Command::new(Path::new(venv).join("bin/openstack"))
        .args(["--os-cloud", "bed"])
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env_remove("OS_CLOUD")
        .output()
        .expect("openstack runs");
    assert!(
        output.status.success(),
        "openstack {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn a_series_stamps_the_standards_properties_on_every_version() {
    let bed = require_testbed!();
    let run = SeriesCli::with_bed(&bed);
    let clouds = run.dir.join("clouds.yaml");
    let mirror = Mirror::start(&run.dir.join("mirror"));
    let name = common::unique("Ubuntu 24.04");
    let key = format!("default/{}", common::unique("noble"));
    let series_name = key.trim_start_matches("default/").to_string();
    let (older, newer) = (serial(5), serial(1));
    let publish = |version: &str, seed: u64| {
        mirror.publish(
            &format!("noble-{version}.img"),
            &common::pseudo_random_bytes(120_000, seed),
            true,
        );
    };
    // Odd seeds: pseudo_random_bytes sets the lowest bit, so 80 and 81 would give the same bytes.
    publish(&older, 81);
    let body = |extra: &str| {
        format!(
            "  image:\n    name: {name}\n    diskFormat: raw\n    minDiskGB: 3\n    minRamMB: 512\n    properties: {{architecture: x86_64, os_distro: ubuntu, os_version: '24.04', hw_disk_bus: scsi, hw_scsi_model: virtio-scsi{extra}}}\n  checksums:\n    url: {}\n    pattern: 'noble-(?P<version>[0-9]+)\\.img'\n  keep: 2\n  schedule: {{every: 168h}}\n  scsMetadata:\n    originalUser: ubuntu\n    description: https://ubuntu.com/about/release-cycle\n    providedUntil: '2029-05-31'\n    hotfixHours: 24\n",
            mirror.checksums_url()
        )
    };
    let manifest = run.manifest(&series_name, &body(""));

    // Before anything is published: the plan finds nothing to say about the standard.
    let (code, out) = tokio::task::block_in_place(|| run.run(&["plan", "-f", &manifest]));
    eprintln!("{out}");
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(standard_lines(&out), Vec::<&str>::new(), "{out}");

    let (code, out) = tokio::task::block_in_place(|| run.run(&["apply", "-f", &manifest]));
    assert_eq!(code, Some(0), "{out}");
    // A week later, the next serial.
    publish(&newer, 83);
    let (code, out) = tokio::task::block_in_place(|| run.run(&["apply", "-f", &manifest]));
    assert_eq!(code, Some(0), "{out}");
    let glance = common::harness::client_for(&bed.demo_cloud());
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(found.len(), 2, "{}", common::mirror::timeline(&found));
    for (version, image) in &found {
        let table = openstack(
            &bed.venv,
            &clouds,
            &[
                "image",
                "show",
                &image.id,
                "-c",
                "name",
                "-c",
                "properties",
                "-f",
                "yaml",
            ],
        );
        eprintln!(
            "openstack image show {} (version {version}):\n{table}",
            image.id
        );
        let shown: Value = serde_json::from_str(&openstack(
            &bed.venv,
            &clouds,
            &["image", "show", &image.id, "-f", "json"],
        ))
        .expect("json");
        let properties = &shown["properties"];
        let expected = [
            ("image_source", mirror.url(&format!("noble-{version}.img"))),
            ("image_build_date", dashed(version)),
            ("image_original_user", "ubuntu".into()),
            (
                "image_description",
                "https://ubuntu.com/about/release-cycle".into(),
            ),
            ("replace_frequency", "weekly".into()),
            ("provided_until", "2029-05-31".into()),
            ("uuid_validity", "last-1".into()),
            ("hotfix_hours", "24".into()),
        ];
        for (property, value) in expected {
            assert_eq!(
                properties[property].as_str(),
                Some(value.as_str()),
                "{property} of {version}: {shown}"
            );
        }
        let (expected_name, hidden) = if *version == newer {
            (name.clone(), false)
        } else {
            (format!("{name}-{version}"), true)
        };
        assert_eq!(shown["name"].as_str(), Some(expected_name.as_str()));
        assert_eq!(shown["visibility"].as_str(), Some("private"));
        assert_eq!(image.hidden, hidden, "{version}");
    }

    // A manifest that breaks rules: plan says which and what to change.
    let broken = run.manifest(
        &series_name,
        &body("").replace(", hw_disk_bus: scsi", "").replace(
            "    hotfixHours: 24\n",
            "    hotfixHours: 24\n    replaceFrequency: daily\n",
        ),
    );
    let (_, out) = tokio::task::block_in_place(|| run.run(&["plan", "-f", &broken]));
    let said = standard_lines(&out);
    eprintln!("{}", said.join("\n"));
    assert!(
        said.iter().any(
            |l| l.starts_with("hw_disk_bus: is missing; set spec.image.properties.hw_disk_bus")
        ),
        "{out}"
    );
    assert!(
        said.iter()
            .any(|l| l.starts_with("replace_frequency: daily promises a new version more often")),
        "{out}"
    );
    for (_, image) in found {
        glint::glance::GlanceApi::delete(&glance, &image.id)
            .await
            .expect("clean up");
    }
}
