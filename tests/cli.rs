//! The `glint image` commands, run as the real binary against the Keystone-backed Glance with a
//! clouds.yaml, as a user would.

mod common;

use std::process::Command;

use common::keystone::password_auth;

struct Cli {
    dir: std::path::PathBuf,
}

impl Cli {
    fn new(bed: &common::Testbed) -> Self {
        let dir = std::env::temp_dir().join(common::unique("glint-cli"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("clouds.yaml"),
            password_auth(bed, &bed.demo_password),
        )
        .expect("clouds.yaml");
        Self { dir }
    }

    /// Runs glint; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", self.dir.join("clouds.yaml"))
            .env("OS_CLOUD", "bed")
            .output()
            .expect("run glint");
        (
            output.status.success(),
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

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_image_commands_create_upload_list_show_download_and_delete() {
    let bed = require_testbed!();
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
    let bed = require_testbed!();
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
