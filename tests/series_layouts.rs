//! ImageSeries against mirrors laid out exactly as the distributions publish them (CirrOS,
//! Debian's dated folders and `latest/`, Ubuntu's `current/`, Fedora's per-compose CHECKSUM,
//! AlmaLinux' `-latest` alias), each served by Python's http.server and by nginx's autoindex,
//! with the real `glint apply` against the Keystone-backed Glance.
//!
//! Each layout goes v1 -> v2 -> v3 (corrupt: the mirror lists a wrong digest) -> v3 fixed, with
//! keep 2, and no spec edit between: glint finds every release itself. After every apply that
//! succeeds, the image carrying the stable name holds exactly the bytes the mirror lists for
//! its newest release: a stale image is never reported current.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::harness::client_for;
use common::layouts::Layout;
use common::mirror::{Mirror, SeriesCli, WebServer};
use glint::glance::GlanceImage;

/// One timeline line (shown with --nocapture, quoted in the closing note).
fn timeline(layout: Layout, web: WebServer, step: &str, found: &[(String, GlanceImage)]) {
    eprintln!(
        "{layout:?}/{web:?} {step}: {}",
        common::mirror::timeline(found)
    );
}

fn current(found: &[(String, GlanceImage)]) -> Vec<&(String, GlanceImage)> {
    found
        .iter()
        .filter(|(_, image)| image.properties.contains_key("glint.dev/latest"))
        .collect()
}

/// Watches Glance while glint rotates: how many images carried the stable name (hidden or
/// not), or glint.dev/latest, at once, at most, over every sample.
struct NameWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl NameWatch {
    fn start(glance: &glint::glance::GlanceClient, stable: &str, key: &str) -> Self {
        use futures::TryStreamExt;
        use glint::glance::{GlanceApi, ListQuery};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (glance, stable, key, flag) = (
            glance.clone(),
            stable.to_string(),
            key.to_string(),
            stop.clone(),
        );
        let task = tokio::spawn(async move {
            let (mut named, mut latest) = (0, 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let mut seen: Vec<GlanceImage> = Vec::new();
                for hidden in ["false", "true"] {
                    let query = ListQuery {
                        properties: [
                            ("glint.dev/series".to_string(), key.clone()),
                            ("os_hidden".to_string(), hidden.to_string()),
                        ]
                        .into(),
                        ..ListQuery::default()
                    };
                    if let Ok(images) = glance.list_images(&query).try_collect::<Vec<_>>().await {
                        seen.extend(images);
                    }
                }
                let with_name = seen
                    .iter()
                    .filter(|image| image.name.as_deref() == Some(stable.as_str()))
                    .count();
                let marked = seen
                    .iter()
                    .filter(|image| image.properties.contains_key("glint.dev/latest"))
                    .count();
                named = named.max(with_name);
                latest = latest.max(marked);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (named, latest)
        });
        Self { stop, task }
    }

    /// (most images with the stable name at once, most with glint.dev/latest at once)
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("watch")
    }
}

/// The version glint gives release `n` of `layout`.
fn version_of(layout: Layout, n: u32) -> String {
    layout
        .version(n)
        .unwrap_or_else(|| layout.modified_version(n))
}

async fn follow(layout: Layout, web: WebServer, bed: &common::Testbed) {
    let cli = SeriesCli::with_bed(bed);
    let mirror = Mirror::start_with(&cli.dir.join("mirror"), web);
    let name = common::unique("layout");
    let key = format!("default/{name}");
    let manifest = cli.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: raw}}\n  keep: 2\n{}",
            layout.checksums_spec(&mirror.url(""))
        ),
    );
    let apply = || cli.run(&["apply", "-f", &manifest]);
    let glance = client_for(&bed.demo_cloud());
    // v2 is large enough to be caught mid-upload by a SIGKILL.
    let data = |n: u32| {
        let size = if n == 2 {
            48 << 20
        } else {
            150_000 + n as usize
        };
        common::pseudo_random_bytes(size, u64::from(n) * 7)
    };
    let versions = versions_of;
    let watch = NameWatch::start(&glance, &name, &key);

    // v1, then v2: each found without an edit, each current once its data is in.
    let mut digests = Vec::new();
    for n in [1, 2] {
        digests.push(layout.publish(mirror.dir(), n, &data(n), true));
        if n == 2 {
            kill_mid_rotation(layout, web, &cli, &manifest, &glance, &key).await;
        }
        let (code, out) = apply();
        assert_eq!(code, Some(0), "{layout:?}/{web:?} v{n}: {out}");
        let found = common::mirror::series_versions(&glance, &key).await;
        timeline(layout, web, &format!("v{n} published"), &found);
        let now = current(&found);
        assert_eq!(now.len(), 1, "{layout:?}/{web:?} v{n}: one current");
        assert_eq!(now[0].0, version_of(layout, n), "{layout:?}/{web:?}");
        assert_eq!(now[0].1.name.as_deref(), Some(name.as_str()));
        assert_eq!(
            now[0].1.properties.get("glint.dev/release-digest"),
            digests.last(),
            "{layout:?}/{web:?} v{n}: the current image holds the bytes the mirror lists"
        );
    }

    // v3 corrupt (a wrong digest listed): it fails and says so, v2 stays current, and v1
    // stays too: keep counts the two newest imported versions, not what the mirror lists.
    layout.publish(mirror.dir(), 3, &data(3), false);
    let (code, out) = apply();
    assert_eq!(code, Some(1), "{layout:?}/{web:?} v3 corrupt: {out}");
    assert!(out.contains("HashMismatch"), "{layout:?}/{web:?}: {out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline(layout, web, "v3 published corrupt", &found);
    assert_eq!(
        versions(&found),
        [1, 2, 3].map(|n| version_of(layout, n)),
        "{layout:?}/{web:?}"
    );
    assert_eq!(current(&found)[0].0, version_of(layout, 2));

    // The mirror fixes v3's digest: glint replaces the quarantined image, v3 becomes current,
    // v2 is retired and v1, beyond keep, goes.
    let fixed = layout.publish(mirror.dir(), 3, &data(3), true);
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{layout:?}/{web:?} v3 fixed: {out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    timeline(layout, web, "v3 fixed on the mirror", &found);
    assert_eq!(
        versions(&found),
        [2, 3].map(|n| version_of(layout, n)),
        "{layout:?}/{web:?}"
    );
    let now = current(&found);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].0, version_of(layout, 3));
    assert_eq!(
        now[0].1.properties.get("glint.dev/release-digest"),
        Some(&fixed)
    );
    assert!(
        found
            .iter()
            .all(|(_, image)| !image.properties.contains_key("glint.dev/quarantined")),
        "the quarantined image was replaced, not left behind"
    );
    let retired = &found[0].1;
    assert_eq!(
        retired.name,
        Some(format!("{name}-{}", version_of(layout, 2)))
    );
    assert!(retired.hidden);
    let (named, latest) = watch.finish().await;
    eprintln!(
        "{layout:?}/{web:?}: at most {named} image(s) with the stable name and {latest} with glint.dev/latest at once"
    );
    assert_eq!(
        (named, latest),
        (1, 1),
        "{layout:?}/{web:?}: the stable name and the latest mark were never on two images"
    );
}

/// `glint apply` killed with SIGKILL while v2's data flows into Glance: v1 stays the one
/// current version, and no version has two images.
async fn kill_mid_rotation(
    layout: Layout,
    web: WebServer,
    cli: &SeriesCli,
    manifest: &str,
    glance: &glint::glance::GlanceClient,
    key: &str,
) {
    let mut child = cli
        .command(&["apply", "-f", manifest])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("apply");
    let v2 = version_of(layout, 2);
    let mut caught = false;
    for _ in 0..1000 {
        let found = common::mirror::series_versions(glance, key).await;
        if found.iter().any(|(version, _)| *version == v2) {
            caught = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        caught,
        "{layout:?}/{web:?}: the killed apply had created v2's image"
    );
    let found = common::mirror::series_versions(glance, key).await;
    timeline(layout, web, "SIGKILL while v2 uploads", &found);
    let now = current(&found);
    assert_eq!(
        now.len(),
        1,
        "{layout:?}/{web:?}: one current after the kill"
    );
    let mut seen = versions_of(&found);
    seen.dedup();
    assert_eq!(seen.len(), found.len(), "one image per version: {seen:?}");
}

fn versions_of(found: &[(String, GlanceImage)]) -> Vec<String> {
    found.iter().map(|(version, _)| version.clone()).collect()
}

macro_rules! layout_test {
    ($name:ident, $layout:expr) => {
        #[tokio::test]
        #[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
        async fn $name() {
            let bed = require_testbed!();
            for web in [WebServer::Nginx, WebServer::Python] {
                follow($layout, web, &bed).await;
            }
        }
    };
}

layout_test!(
    cirros_version_folders_are_followed_without_edits,
    Layout::CirrosFolders
);
layout_test!(
    debian_dated_folders_are_followed_without_edits,
    Layout::DebianDated
);
layout_test!(
    debians_latest_folder_turns_each_new_build_into_a_version,
    Layout::DebianLatest
);
layout_test!(
    ubuntus_current_folder_turns_each_new_build_into_a_version,
    Layout::UbuntuCurrent
);
layout_test!(
    fedoras_per_compose_checksums_files_are_followed_without_edits,
    Layout::FedoraComposes
);
layout_test!(
    almalinux_latest_alias_is_one_release_with_its_dated_file,
    Layout::AlmaLatestAlias
);

#[tokio::test]
#[ignore = "needs the real services: scripts/test runs it (see tests/README.md)"]
async fn qcow2_releases_land_as_raw_when_the_series_converts() {
    let bed = require_testbed!();
    let cli = SeriesCli::with_bed(&bed);
    // CirrOS' disk.img files are qcow2, as every distribution's cloud image is.
    let layout = Layout::CirrosFolders;
    let mirror = Mirror::start_with(&cli.dir.join("mirror"), WebServer::Nginx);
    let (raw, qcow2) = common::disks::disk_in("qcow2", 8 * 1024 * 1024, 41);
    layout.publish(mirror.dir(), 1, &qcow2, true);
    let name = common::unique("converted");
    let manifest = cli.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: qcow2, convertTo: raw}}\n{}",
            layout.checksums_spec(&mirror.url(""))
        ),
    );
    let (code, out) = cli.run(&["apply", "-f", &manifest]);
    assert_eq!(code, Some(0), "{out}");
    let glance = client_for(&bed.demo_cloud());
    let found = common::mirror::series_versions(&glance, &format!("default/{name}")).await;
    let image = &current(&found)[0].1;
    assert_eq!(
        image.disk_format.as_ref().map(|f| f.to_string()).as_deref(),
        Some("raw")
    );
    assert_eq!(
        image.size,
        Some(raw.len() as u64),
        "Glance holds the raw disk"
    );
    let sha512: String = <sha2::Sha512 as sha2::Digest>::digest(&raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(image.os_hash_value.as_deref(), Some(sha512.as_str()));
}
