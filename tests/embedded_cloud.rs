//! glint's main job with nothing installed: `glint apply` / `plan` / `image` with no cloud
//! configured run against the embedded cloud, on the shipped offline examples, as the README's
//! first command does. Also the embedded cloud's own guarantees across a restart.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/local");

/// A user with no clouds.yaml anywhere glint looks: a scratch HOME and working folder.
struct NewUser {
    home: PathBuf,
}

impl NewUser {
    fn new() -> Self {
        let home = std::env::temp_dir().join(common::unique("glint-new-user"));
        std::fs::create_dir_all(&home).expect("home");
        Self { home }
    }

    fn data_dir(&self) -> PathBuf {
        self.home.join(".local/share/glint")
    }

    /// Runs glint; (exit code, stdout, stderr).
    fn glint(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_glint"))
            .args(args)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .env_remove("GLINT_DATA_DIR")
            .output()
            .expect("run glint");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for NewUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The md5 of the example disk as Glance should store it: unpacked.
fn example_disk_md5() -> String {
    use md5::Digest;
    let packed = std::fs::read(Path::new(EXAMPLES).join("images/hello.img.gz")).expect("example");
    let mut disk = Vec::new();
    flate2::read::GzDecoder::new(packed.as_slice())
        .read_to_end(&mut disk)
        .expect("gunzip");
    assert_eq!(disk.len(), 1024 * 1024, "the example is a 1 MiB disk");
    md5::Md5::digest(&disk)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn with_no_cloud_configured_apply_uses_the_embedded_cloud_and_a_second_apply_changes_nothing() {
    let user = NewUser::new();
    let (code, stdout, stderr) = user.glint(&["apply", "-f", EXAMPLES]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no cloud configured; using the embedded cloud in")
            && stderr.contains(&user.data_dir().display().to_string()),
        "{stderr}"
    );
    let md5 = example_disk_md5();
    for name in ["default/hello ", "default/hello-shared "] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {stdout}"));
        assert!(
            row.contains(" active ") && row.contains(" 1048576 ") && row.ends_with(&md5),
            "{row}"
        );
    }
    assert!(
        user.data_dir().join("metadata.redb").is_file(),
        "the cloud keeps its data"
    );

    let (code, again, stderr) = user.glint(&["apply", "-f", EXAMPLES]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(again.contains("no changes"), "{again}");

    let (code, listed, stderr) = user.glint(&["image", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains("hello-disk") && !listed.contains("hello-shared"),
        "hidden images stay out of the default listing: {listed}"
    );
}

#[test]
fn plan_after_an_edit_shows_each_change_and_exits_2() {
    let user = NewUser::new();
    let (code, _, stderr) = user.glint(&["apply", "-f", &format!("{EXAMPLES}/hello.yaml")]);
    assert_eq!(code, Some(0), "{stderr}");
    // The edited copy lives elsewhere, so its file: URL is made absolute.
    let original = std::fs::read_to_string(Path::new(EXAMPLES).join("hello.yaml")).expect("read");
    let edited = original
        .replace("minDiskGB: 1", "minDiskGB: 2")
        .replace(
            "tags: [example, offline]",
            "tags: [example, offline, edited]",
        )
        .replace(
            "url: file:images/hello.img.gz",
            &format!("url: file://{EXAMPLES}/images/hello.img.gz"),
        );
    let edited_path = user.home.join("hello.yaml");
    std::fs::write(&edited_path, edited).expect("write");
    let (code, plan, stderr) = user.glint(&["plan", "-f", edited_path.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{plan}\n{stderr}");
    assert!(plan.contains("min_disk: 1 -> 2"), "{plan}");
    assert!(
        plan.contains(r#"tags: ["example", "offline"] -> ["edited", "example", "offline"]"#),
        "{plan}"
    );
    assert!(
        !plan.contains("upload"),
        "the data is unchanged, so nothing is uploaded again: {plan}"
    );
}

#[test]
fn the_embedded_cloud_keeps_images_across_restarts_and_an_interrupted_upload_is_not_active() {
    let user = NewUser::new();
    let data_dir = user.home.join("cloud");
    let data_arg = data_dir.to_str().expect("utf-8").to_string();
    let (code, _, stderr) = user.glint(&[
        "apply",
        "--data-dir",
        &data_arg,
        "-f",
        &format!("{EXAMPLES}/hello.yaml"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    // A crash mid-upload, as the store finds it: a record left `saving` and a partial file.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let interrupted_id = runtime.block_on(async {
        let store = glint::cloud::store::Store::open(&data_dir).expect("open");
        let mut image = glint::cloud::image::ImageRecord::create(
            &serde_json::json!({"name": "half", "disk_format": "raw"}),
            "local",
            "2026-01-01T00:00:00Z",
            &Default::default(),
        )
        .expect("record");
        image.status = "saving".into();
        store.put(&image).expect("put");
        std::fs::write(store.partial_path(&image.id), b"half an image").expect("partial");
        image.id
    });
    let (code, shown, stderr) =
        user.glint(&["image", "--data-dir", &data_arg, "show", &interrupted_id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        shown.contains("queued"),
        "back to queued, as Glance does: {shown}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(data_dir.join("images"))
        .expect("images folder")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial data is removed: {leftovers:?}"
    );
    let (code, listed, stderr) = user.glint(&["image", "--data-dir", &data_arg, "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        listed.contains("hello-disk"),
        "kept across restarts: {listed}"
    );
}
