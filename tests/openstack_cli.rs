//! The real python-openstackclient (from the test bed's venv) drives `glint cloud` through a
//! whole image workflow, and every answer is checked: create with a file, show, set, tag,
//! deactivate, reactivate, save, member add and list, delete.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// `glint cloud` on a free loopback port and a scratch folder; stopped when dropped.
struct EmbeddedCloud {
    child: Child,
    endpoint: String,
    data_dir: PathBuf,
}

impl EmbeddedCloud {
    fn start() -> Self {
        let port = common::harness::free_port();
        let data_dir = std::env::temp_dir().join(format!("glint-osc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let child = common::kubectl::glint_command()
            .args(["cloud", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("glint cloud starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "glint cloud did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            endpoint,
            data_dir,
        }
    }
}

impl Drop for EmbeddedCloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

struct Openstack {
    program: PathBuf,
    endpoint: String,
}

impl Openstack {
    /// Runs `openstack ARGS`, which must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.program)
            .args(["--os-auth-type", "none", "--os-endpoint", &self.endpoint])
            .args(args)
            .env_remove("OS_CLOUD")
            .output()
            .expect("openstack runs");
        assert!(
            output.status.success(),
            "openstack {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_format = args.to_vec();
        with_format.extend(["-f", "json"]);
        let text = self.run(&with_format);
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?}: {err}: {text}"))
    }

    fn show(&self, image: &str) -> Value {
        self.json(&["image", "show", image])
    }
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
fn the_openstack_cli_runs_a_whole_image_workflow_against_glint_cloud() {
    let bed = require_testbed!();
    let program = Path::new(&bed.venv).join("bin/openstack");
    assert!(
        program.is_file(),
        "{} is missing: scripts/testbed installs python-openstackclient",
        program.display()
    );
    let cloud = EmbeddedCloud::start();
    let os = Openstack {
        program,
        endpoint: cloud.endpoint.clone(),
    };
    let scratch = std::env::temp_dir().join(format!("glint-osc-files-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let data = common::pseudo_random_bytes(3 * 1024 * 1024 + 17, 42);
    let file = scratch.join("disk.raw");
    std::fs::write(&file, &data).expect("write");

    let created = os.json(&[
        "image",
        "create",
        "--file",
        file.to_str().expect("utf-8 path"),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--property",
        "os_distro=cirros",
        "workflow",
    ]);
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["size"], data.len() as u64, "{created}");
    assert_eq!(created["checksum"], md5_hex(&data), "{created}");
    let id = created["id"].as_str().expect("id").to_string();

    let shown = os.show(&id);
    assert_eq!(shown["name"], "workflow");
    assert_eq!(shown["properties"]["os_distro"], "cirros", "{shown}");
    assert_eq!(shown["properties"]["os_hash_algo"], "sha512", "{shown}");

    os.run(&[
        "image",
        "set",
        "--name",
        "workflow-renamed",
        "--min-disk",
        "2",
        "--property",
        "os_version=0.6",
        &id,
    ]);
    let renamed = os.show(&id);
    assert_eq!(renamed["name"], "workflow-renamed");
    assert_eq!(renamed["min_disk"], 2);
    assert_eq!(renamed["properties"]["os_version"], "0.6", "{renamed}");

    os.run(&["image", "set", "--tag", "blue", "--tag", "green", &id]);
    os.run(&["image", "unset", "--tag", "blue", &id]);
    assert_eq!(os.show(&id)["tags"], serde_json::json!(["green"]));

    os.run(&["image", "set", "--deactivate", &id]);
    assert_eq!(os.show(&id)["status"], "deactivated");
    os.run(&["image", "set", "--activate", &id]);
    assert_eq!(os.show(&id)["status"], "active");

    let saved = scratch.join("saved.raw");
    os.run(&[
        "image",
        "save",
        "--file",
        saved.to_str().expect("utf-8 path"),
        &id,
    ]);
    assert!(
        std::fs::read(&saved).expect("saved") == data,
        "the saved file is the uploaded data"
    );

    os.run(&["image", "set", "--shared", &id]);
    let project = "0f4a3c9d8e7b4a6c9d1e2f3a4b5c6d7e";
    let member = os.json(&["image", "add", "project", &id, project]);
    assert_eq!(
        (&member["member_id"], &member["status"]),
        (&Value::from(project), &Value::from("pending"))
    );
    let members = os.json(&["image", "member", "list", &id]);
    assert_eq!(members[0]["Member ID"], project, "{members}");
    assert_eq!(members[0]["Status"], "pending", "{members}");

    let listed = os.json(&["image", "list"]);
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|image| image["ID"] == id.as_str()),
        "{listed}"
    );
    os.run(&["image", "delete", &id]);
    let after = os.json(&["image", "list"]);
    assert_eq!(after, serde_json::json!([]), "the deleted image is gone");
    let _ = std::fs::remove_dir_all(&scratch);
}
