//! The `glint image` and `plan`/`apply` commands, run as the real binary with a clouds.yaml, as a
//! user would: against the Keystone-backed Glance on the bed, else the embedded cloud (auth none).
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

struct Cli {
    dir: std::path::PathBuf,
}

impl Cli {
    fn new(bed: &common::Testbed) -> Self {
        let dir = std::env::temp_dir().join(common::unique("glint-cli"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("clouds.yaml"), bed.demo_cloud()).expect("clouds.yaml");
        Self { dir }
    }

    /// Runs glint; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let (code, stdout, stderr) = self.run_for_code(args);
        (code == Some(0), stdout, stderr)
    }

    /// Runs glint; returns (exit code, stdout, stderr).
    fn run_for_code(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", self.dir.join("clouds.yaml"))
            .env("OS_CLOUD", "bed")
            .output()
            .expect("run glint");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args);
        assert!(success, "glint {args:?} failed: {stderr}");
        stdout
    }
}

/// The row `glint apply` printed for `key` (`namespace/name`, `@target` after it for a
/// target): name, id, status, size, checksum.
fn applied_row<'a>(out: &'a str, key: &str) -> &'a str {
    let start = format!("{key} ");
    out.lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("apply printed no row for {key}: {out}"))
}

/// The image id in a row of `glint apply`'s table.
fn id_column(row: &str) -> String {
    row.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no id column in {row:?}"))
        .to_string()
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_image_commands_create_upload_list_show_download_and_delete() {
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    let name = common::unique("cli");
    let data = common::pseudo_random_bytes(300_000, 9);
    let source = cli.dir.join("in.raw");
    std::fs::write(&source, &data).expect("write source");

    let created = cli.ok(&[
        "image",
        "create",
        &name,
        "--disk-format",
        "raw",
        "--tag",
        "cli",
        "--property",
        "os_distro=test",
        "--file",
        source.to_str().expect("path"),
    ]);
    assert!(created.contains("uploaded 300000 bytes"), "{created}");
    let id = created
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("created "))
        .expect("created line")
        .to_string();

    let listed = cli.ok(&["image", "list", "--name", &name]);
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with(&id) && line.contains("active")),
        "{listed}"
    );

    let shown = cli.ok(&["image", "show", &name]);
    assert!(
        shown
            .lines()
            .any(|line| line.split_whitespace().eq(["os_distro", "test"])),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|line| line.split_whitespace().eq(["size", "300000"])),
        "{shown}"
    );

    let target = cli.dir.join("out.raw");
    cli.ok(&["image", "download", &id, target.to_str().expect("path")]);
    assert_eq!(std::fs::read(&target).expect("read back"), data);

    cli.ok(&["image", "delete", &name]);
    let (success, _, stderr) = cli.run(&["image", "show", &id]);
    assert!(
        !success && stderr.contains("no image with name or id"),
        "{stderr}"
    );
}

#[test]
fn a_bad_cloud_name_or_disk_format_is_explained() {
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    let (success, _, stderr) = cli.run(&["--os-cloud", "nope", "image", "list"]);
    assert!(!success);
    assert!(
        stderr.contains("cloud \"nope\" is not in clouds.yaml (it defines: bed)"),
        "{stderr}"
    );
    let (success, _, stderr) = cli.run(&["image", "create", "x", "--disk-format", "qcow3"]);
    assert!(!success);
    assert!(
        stderr.contains("qcow2"),
        "lists the valid formats: {stderr}"
    );
}

/// Image manifests in a folder, planned and applied against the real Glance the way a user
/// runs `glint plan -f` and `glint apply -f`: the plan says what will change and the exit code
/// whether anything will, apply converges (data uploaded and verified), and both are
/// idempotent; an edit shows as `before -> after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_make_glance_match_the_manifests_and_a_second_run_changes_nothing() {
    use md5::Digest;
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    let data = common::pseudo_random_bytes(700_000, 21);
    let port = common::harness::free_port();
    let _server = common::serve_file(port, data.clone()).await;
    let (with_data, bare) = (common::unique("applied"), common::unique("bare"));
    let manifests = cli.dir.join("images");
    std::fs::create_dir_all(&manifests).expect("manifest folder");
    let write = |tags: &str| {
        let text = format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {with_data}, namespace: team}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n  tags: [{tags}]\n  source: {{url: \"http://127.0.0.1:{port}/image.raw\"}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: openstack}}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {bare}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: qcow2\n"
        );
        std::fs::write(manifests.join("images.yaml"), text).expect("write manifests");
    };
    write("first");
    let folder = manifests.to_str().expect("utf-8 path");
    let run = |args: &[&str]| cli.run_for_code(args);

    let (code, out, err) = run(&["plan", "-f", folder]);
    assert_eq!(code, Some(2), "changes to make: {out}{err}");
    assert!(out.contains(&format!("~ team/{with_data} (new):")), "{out}");
    assert!(
        out.contains(&format!(
            "create image \"{with_data}\"\n    upload the source's data"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("~ default/{bare} (new):")), "{out}");
    assert!(
        err.contains("skipping") && err.contains("v1 Secret"),
        "{err}"
    );

    let (code, out, err) = run(&["apply", "-f", folder]);
    assert_eq!(code, Some(0), "{out}{err}");
    let md5 = md5::Md5::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>();
    let row = applied_row(&out, &format!("team/{with_data}"));
    assert!(row.contains(" active "), "{row}");
    assert!(row.contains(&format!(" {} ", data.len())), "{row}");
    assert!(
        row.ends_with(&md5),
        "Glance's checksum is the data's md5: {row}"
    );
    let bare_row = applied_row(&out, &format!("default/{bare}"));
    assert!(bare_row.contains(" queued "), "{bare_row}");

    let (code, out, _) = run(&["plan", "-f", folder]);
    assert_eq!(code, Some(0), "nothing left to do: {out}");
    assert!(
        out.contains("0 image(s) to change, 2 unchanged, 0 error(s)"),
        "{out}"
    );
    let (code, out, _) = run(&["apply", "-f", folder]);
    assert_eq!(code, Some(0));
    assert!(out.trim_end().ends_with("no changes"), "{out}");

    write("first, second");
    let (code, out, _) = run(&["plan", "-f", folder, "--output", "json"]);
    assert_eq!(code, Some(2));
    let plan: serde_json::Value = serde_json::from_str(&out).expect("plan as JSON");
    assert_eq!(plan["changes"], 1, "{out}");
    let edited = plan["images"]
        .as_array()
        .and_then(|images| {
            images
                .iter()
                .find(|i| i["image"] == format!("team/{with_data}"))
        })
        .expect("the edited image");
    assert_eq!(
        edited["actions"],
        serde_json::json!([r#"tags: ["first"] -> ["first", "second"]"#]),
        "{out}"
    );
    let (code, out, err) = run(&["apply", "-f", folder]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = edited["id"].as_str().expect("the image's id").to_string();
    let shown = cli.ok(&["image", "show", &id]);
    assert!(shown.contains("second"), "the tag reached Glance: {shown}");

    let bare_id = id_column(bare_row);
    for id in [id, bare_id] {
        cli.ok(&["image", "delete", &id]);
    }
}

/// While apply's own transfer runs, its progress comes from the transfer and its end wakes the
/// apply: Glance, busy taking the data, is not asked about the image once a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_does_not_poll_glance_while_its_own_upload_runs() {
    use common::fault_proxy::{FaultProxy, Route};
    let bed = glance_under_test!();
    let proxy = FaultProxy::start(&bed.keystone_glance_url).await;
    let cli = Cli::new(&bed);
    let clouds = format!(
        "{}    image_endpoint_override: {}\n",
        bed.demo_cloud(),
        proxy.url()
    );
    std::fs::write(cli.dir.join("clouds.yaml"), clouds).expect("clouds.yaml");
    // 40 chunks of 64 KiB, one every 100 ms: the upload runs for about 4 seconds.
    let data = common::pseudo_random_bytes(40 * 65_536, 22);
    let (port, _server) = common::serve_slowly(data.clone(), Duration::from_millis(100)).await;
    let name = common::unique("unpolled");
    let manifest = cli.dir.join("image.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: raw\n  source: {{url: \"http://127.0.0.1:{port}/image.raw\"}}\n"
        ),
    )
    .expect("manifest");
    let path = manifest.to_str().expect("utf-8 path").to_string();
    let (code, out, err) =
        tokio::task::block_in_place(|| cli.run_for_code(&["apply", "-f", &path]));
    assert_eq!(code, Some(0), "{out}{err}");
    let row = applied_row(&out, &format!("default/{name}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns.get(2..4),
        Some(&["active", &data.len().to_string()][..]),
        "{row}"
    );

    // The first look (nothing there yet), the transfer's check of Glance's answer, the pass
    // after the end and the final read: a poll a second would add four more.
    let looks = proxy.seen(&Route::new("GET", "/v2/images/*"));
    assert!(
        (1..=4).contains(&looks),
        "apply read the image {looks} times for a 4-second upload: {}",
        proxy.summary()
    );
    let id = id_column(row);
    cli.ok(&["image", "delete", &id]);
}

/// `glint apply -f` derives an image's id from the manifest's namespace/name, and Glance never
/// frees the id of a deleted image: each apply after a delete takes the next derived id, and
/// when all of them are spent the error says how to go on, and no image is left behind.
#[test]
fn applying_a_name_again_after_its_images_were_deleted_takes_fresh_ids_until_they_run_out() {
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    let name = common::unique("reapplied");
    let manifest = cli.dir.join("image.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: openstack, cloudName: bed}}\n  diskFormat: qcow2\n"
        ),
    )
    .expect("manifest");
    let path = manifest.to_str().expect("utf-8 path").to_string();
    let mut ids = std::collections::BTreeSet::new();
    for round in 1..=16 {
        let (code, out, err) = cli.run_for_code(&["apply", "-f", &path]);
        assert_eq!(code, Some(0), "apply {round}: {out}{err}");
        let id = id_column(applied_row(&out, &format!("default/{name}")));
        assert!(ids.insert(id.clone()), "apply {round} reused {id}");
        cli.ok(&["image", "delete", &id]);
    }

    let (code, out, err) = cli.run_for_code(&["apply", "-f", &path]);
    assert_eq!(code, Some(1), "every derived id is spent: {out}{err}");
    let said = format!("{out}{err}");
    for remedy in [
        "held by deleted images",
        "metadata.name",
        "glance-manage db purge",
    ] {
        assert!(said.contains(remedy), "the error names {remedy:?}: {said}");
    }
    let listed = cli.ok(&["image", "list"]);
    assert!(
        !listed.contains(&name),
        "the refused apply left no image behind: {listed}"
    );
}

/// An Image with spec.targets through the CLI: each target's cloud is the one its
/// cloudName names in the user's clouds.yaml (no cloud chosen: the file holds two), its region
/// over the cloud's (the bed's second region is another Glance), and one download serves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_publishes_an_image_to_every_target_from_one_download() {
    use common::sources::{Reply, SourceServer};
    use glint::glance::{GlanceApi, GlanceStatus};
    use sha2::Digest;
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    // Two clouds in the file and no OS_CLOUD: only the targets say where to go.
    let clouds = std::fs::read_to_string(cli.dir.join("clouds.yaml")).expect("clouds.yaml");
    let twice = clouds.replacen(
        "clouds:\n",
        "clouds:\n  spare:\n    auth_type: none\n    auth: {endpoint: 'http://127.0.0.1:9'}\n",
        1,
    );
    std::fs::write(cli.dir.join("clouds.yaml"), twice).expect("clouds.yaml");
    let data = common::pseudo_random_bytes(2 << 20, 77);
    let server = SourceServer::serving(Reply::ok(data.clone())).await;
    let name = common::unique("everywhere");
    // On the bed the second target is the other region's Glance; the embedded cloud has one.
    let region = if bed.embedded() {
        String::new()
    } else {
        format!(", region: {}", bed.prod_region)
    };
    let manifest = cli.dir.join("everywhere.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  diskFormat: raw\n  source: {{url: '{}'}}\n  targets:\n  - {{name: eu, cloudCredentialsRef: {{secretName: s, cloudName: bed}}}}\n  - {{name: us, cloudCredentialsRef: {{secretName: s, cloudName: bed}}{region}, visibility: community}}\n",
            server.url("/disk.raw")
        ),
    )
    .expect("manifest");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", cli.dir.join("clouds.yaml"))
            .env_remove("OS_CLOUD")
            .output()
            .expect("run glint");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let file = manifest.to_str().expect("utf-8 path");

    let (code, out, err) = run(&["plan", "-f", file]);
    assert_eq!(code, Some(2), "{out}{err}");
    for target in ["eu", "us"] {
        assert!(
            out.contains(&format!("~ default/{name}@{target} (new):")),
            "{out}"
        );
    }
    let (code, out, err) = run(&["apply", "-f", file]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        server.gets(),
        1,
        "one download for both targets: {out}{err}"
    );
    let id_of = |target: &str| id_column(applied_row(&out, &format!("default/{name}@{target}")));
    let (eu, us) = (id_of("eu"), id_of("us"));
    assert_ne!(eu, us);
    let in_eu = common::harness::client_for(&clouds);
    let in_us = if bed.embedded() {
        common::harness::client_for(&clouds)
    } else {
        common::harness::client_for(&common::keystone::production_auth(&bed))
    };
    let sha512: String = sha2::Sha512::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for (api, id) in [(&in_eu, &eu), (&in_us, &us)] {
        let image = api.get_image(id).await.expect("the target's image");
        assert_eq!(image.status, GlanceStatus::Active);
        assert_eq!(image.os_hash_value.as_deref(), Some(sha512.as_str()));
    }
    assert_eq!(
        in_us.get_image(&us).await.expect("us").visibility,
        glint::glance::Visibility::Community,
        "the target's own visibility"
    );

    let (code, out, _) = run(&["apply", "-f", file]);
    assert_eq!(code, Some(0));
    assert!(out.trim_end().ends_with("no changes"), "{out}");
    assert_eq!(server.gets(), 1, "nothing downloaded again");
    in_eu.delete(&eu).await.expect("clean up eu");
    in_us.delete(&us).await.expect("clean up us");
}

#[test]
fn plan_names_the_file_and_document_of_a_bad_manifest_and_exits_1() {
    let bed = glance_under_test!();
    let cli = Cli::new(&bed);
    let file = cli.dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {name: fine}\nspec: {cloudCredentialsRef: {secretName: s, cloudName: bed}, diskFormat: raw}\n---\napiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {name: wrong}\nspec: {cloudCredentialsRef: {secretName: s, cloudName: bed}, diskFormat: raw, minDiskGB: lots}\n",
    )
    .expect("write");
    let (code, _, stderr) = cli.run_for_code(&["plan", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}, document 2: not a valid Image",
            file.display()
        )),
        "{stderr}"
    );
}

/// Runs `glint ARGS --help` with no cloud configured; the help text.
fn help_of(command: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_glint"))
        .args(command)
        .arg("--help")
        .output()
        .expect("run glint");
    assert!(output.status.success(), "glint {command:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The subcommands a help text lists under "Commands:", without clap's own `help`.
fn subcommands_in(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn no_help_text_carries_a_measured_figure() {
    // Rates and timings measured on one machine belong in the README's Benchmarks, where they
    // are dated and explained; a --help text is read on other machines as a promise.
    let figure = regex::Regex::new(
        r"(?i)\b\d+(\.\d+)?(-\d+(\.\d+)?)?\s*(/s\b|[kmg]i?b/s|ms\b|x faster)|\bmeasured\b",
    )
    .unwrap();
    let mut pending = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let help = help_of(&args);
        seen += 1;
        for line in help.lines() {
            assert!(
                !figure.is_match(line),
                "glint {} --help carries a measured figure: {line}",
                path.join(" ")
            );
        }
        for name in subcommands_in(&help) {
            let mut next = path.clone();
            next.push(name);
            pending.push(next);
        }
    }
    assert!(
        seen > 5,
        "only {seen} help texts found: is the Commands: parsing still right?"
    );
}
