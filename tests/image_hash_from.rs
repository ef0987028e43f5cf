//! An Image whose hash a distribution's checksums file publishes (`spec.source.hashFrom`), on a
//! mirror laid out as Ubuntu publishes a dated release (`noble/20241210/`: the image,
//! `SHA256SUMS` listing it among its siblings, and the armoured detached `SHA256SUMS.gpg`),
//! served by Python's http.server and signed with GnuPG here. Through the real
//! `glint apply -f` into Glance (the test bed's behind Keystone, when it runs), and through
//! `glint run` against a real kube-apiserver.
//!
//! Run with `cargo test --test image_hash_from -- --include-ignored --nocapture` to see each
//! case's words as the user reads them.
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::gpg::{Gpg, SignOptions};
use common::harness::client_for;
use common::mirror::{Mirror, SeriesCli};
use futures::TryStreamExt;
use glint::glance::{GlanceApi, GlanceImage, GlanceStatus, ListQuery};
use sha2::Digest;

const FOLDER: &str = "noble/20241210";
const FILE: &str = "noble-server-cloudimg-amd64.img";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One dated release folder of the mirror.
struct Release<'a> {
    mirror: &'a Mirror,
    gpg: &'a Gpg,
}

impl Release<'_> {
    fn dir(&self) -> PathBuf {
        self.mirror.dir().join(FOLDER)
    }

    fn sums(&self) -> PathBuf {
        self.dir().join("SHA256SUMS")
    }

    /// Serves `served` as the image, and a SHA256SUMS that lists the sha256 of `listed` for
    /// it (no line for it when `None`) among the other files Ubuntu lists; no signature yet.
    fn publish(&self, served: &[u8], listed: Option<&[u8]>) {
        std::fs::create_dir_all(self.dir()).expect("release folder");
        std::fs::write(self.dir().join(FILE), served).expect("image");
        let line =
            |data: &[u8], name: &str| format!("{} *{name}\n", hex(&sha2::Sha256::digest(data)));
        let mut sums = line(b"kvm", "noble-server-cloudimg-amd64-disk-kvm.img");
        if let Some(listed) = listed {
            sums.push_str(&line(listed, FILE));
        }
        sums.push_str(&line(b"tar", "noble-server-cloudimg-amd64.tar.gz"));
        std::fs::write(self.sums(), sums).expect("SHA256SUMS");
        let _ = std::fs::remove_file(self.dir().join("SHA256SUMS.gpg"));
    }

    fn sign(&self, key: &str) {
        let options = SignOptions {
            armor: true,
            ..SignOptions::default()
        };
        let signature = self.dir().join("SHA256SUMS.gpg");
        self.gpg.detach_sign(key, &self.sums(), &signature, options);
    }

    /// Changes the image's listed digest after signing, as an attacker (or a broken sync) would.
    fn alter(&self) {
        let text = std::fs::read_to_string(self.sums()).expect("read");
        let at = text.find(&format!(" *{FILE}")).expect("the image's line") - 1;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(self.sums(), bytes).expect("alter");
    }
}

/// The Image manifest, with the keys' ConfigMap document beside it when `keys` is given.
fn manifest(name: &str, tag: &str, mirror: &Mirror, keys: Option<&str>) -> String {
    let mut text = format!(
        "apiVersion: glint.dev/v1alpha1\nkind: Image\nmetadata: {{name: {name}}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  diskFormat: raw\n  tags: [{tag}]\n  source:\n    url: \"{}\"\n    hashFrom:\n      url: \"{}\"\n      signature:\n        detached: '{{file}}.gpg'\n        keys: {{configMapName: ubuntu-keys}}\n",
        mirror.url(&format!("{FOLDER}/{FILE}")),
        mirror.url(&format!("{FOLDER}/SHA256SUMS")),
    );
    if let Some(keys) = keys {
        let indented: String = keys.lines().map(|line| format!("    {line}\n")).collect();
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ubuntu-keys}}\ndata:\n  keys.asc: |\n{indented}"
        ));
    }
    text
}

async fn tagged(glance: &glint::glance::GlanceClient, tag: &str) -> Vec<GlanceImage> {
    let query = ListQuery {
        tags: vec![tag.to_string()],
        ..ListQuery::default()
    };
    glance
        .list_images(&query)
        .try_collect()
        .await
        .expect("list images")
}

#[tokio::test]
#[ignore = "needs gpg (Debian's gnupg): scripts/test installs it"]
async fn an_images_hash_is_read_from_a_signed_checksums_file_and_believed_only_once_the_signature_checks_out()
 {
    let bed = glance_under_test!();
    let cli = SeriesCli::with_bed(&bed);
    let mirror = Mirror::start(&cli.dir.join("mirror"));
    let gpg = Gpg::new();
    let trusted = gpg.key("Ubuntu <cd@ubuntu.invalid>", "rsa3072", "never", None);
    let stranger = gpg.key("Stranger <x@elsewhere.invalid>", "ed25519", "never", None);
    let release = Release {
        mirror: &mirror,
        gpg: &gpg,
    };
    let name = common::unique("noble");
    let tag = common::unique("hash-from");
    let path = cli.dir.join("image.yaml");
    let path_text = path.display().to_string();
    let apply = |keys: Option<&str>| {
        std::fs::write(&path, manifest(&name, &tag, &mirror, keys)).expect("manifest");
        cli.run(&["apply", "-f", &path_text])
    };
    let glance = client_for(&bed.demo_cloud());
    let data = common::pseudo_random_bytes(300_000, 61);
    let keys = gpg.export(&[&trusted]);

    // Each way the file cannot be believed stops the apply with its own reason, and no data
    // reaches Glance (an image may be made, queued, for the next apply to fill: never two).
    type Case<'a> = (
        &'a str,
        Box<dyn Fn() + 'a>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no keys among the manifests",
            Box::new(|| {
                release.publish(&data, Some(&data));
                release.sign(&trusted);
            }),
            None,
            "TrustedKeysNotFound",
            "ubuntu-keys",
        ),
        (
            "signed by a key that is not trusted",
            Box::new(|| {
                release.publish(&data, Some(&data));
                release.sign(&stranger);
            }),
            Some(keys.as_str()),
            "SignatureUnknownKey",
            stranger.as_str(),
        ),
        (
            "altered after signing",
            Box::new(|| {
                release.publish(&data, Some(&data));
                release.sign(&trusted);
                release.alter();
            }),
            Some(keys.as_str()),
            "SignatureBad",
            trusted.as_str(),
        ),
        (
            "no line for the image",
            Box::new(|| {
                release.publish(&data, None);
                release.sign(&trusted);
            }),
            Some(keys.as_str()),
            "HashNotPublished",
            "spec.source.hashFrom.file",
        ),
        (
            "other bytes served than the signed file lists",
            Box::new(|| {
                release.publish(&data, Some(b"the build the file vouches for"));
                release.sign(&trusted);
            }),
            Some(keys.as_str()),
            "HashMismatch",
            "SHA256SUMS (spec.source.hashFrom) says",
        ),
    ];
    for (what, prepare, keys, reason, named) in cases {
        prepare();
        let (code, out) = apply(keys);
        eprintln!(
            "{what}: {}",
            out.lines()
                .find(|line| line.contains(reason))
                .unwrap_or(&out)
        );
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(out.contains(reason), "{what}: wants {reason}: {out}");
        assert!(out.contains(named), "{what}: names {named}: {out}");
        let images = tagged(&glance, &tag).await;
        assert!(images.len() <= 1, "{what}: never two images: {images:?}");
        assert!(
            images
                .iter()
                .all(|image| image.status != GlanceStatus::Active),
            "{what}: no data was believed: {images:?}"
        );
    }

    // Signed by the trusted key and true to the bytes: uploaded, and Glance holds them.
    release.publish(&data, Some(&data));
    release.sign(&trusted);
    let (code, out) = apply(Some(&keys));
    assert_eq!(code, Some(0), "signed and true: {out}");
    let images = tagged(&glance, &tag).await;
    assert_eq!(images.len(), 1, "one image: {images:?}");
    let image = &images[0];
    assert_eq!(image.status, GlanceStatus::Active);
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(
        image.os_hash_value.as_deref(),
        Some(hex(&sha2::Sha512::digest(&data)).as_str()),
        "Glance stored the bytes the signed file vouches for"
    );
    glance.delete(&image.id).await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services and gpg: scripts/test runs it (see tests/README.md)"]
async fn glint_run_says_why_an_images_published_hash_is_not_believed_yet_and_uploads_once_it_is() {
    use common::kubectl::{GlintProcess, Kubectl};
    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let k = Kubectl::in_fresh_namespace(&cluster, "hashfrom");
    let namespace = k.namespace.clone();
    k.install_with_cloud_secret(&bed.demo_cloud());
    k.wait("crd/images.glint.dev", "condition=Established");
    let scratch = std::env::temp_dir().join(&namespace);
    let mirror = Mirror::start(&scratch.join("mirror"));
    let gpg = Gpg::new();
    let trusted = gpg.key("Ubuntu <cd@ubuntu.invalid>", "rsa3072", "never", None);
    let release = Release {
        mirror: &mirror,
        gpg: &gpg,
    };
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let _glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let reason = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    let message = "{.status.conditions[?(@.type==\"Ready\")].message}";
    let data = common::pseudo_random_bytes(200_000, 63);
    let tag = common::unique("hash-from-run");

    // The keys' ConfigMap is not there yet: nothing is fetched, and Ready says what to add.
    release.publish(&data, Some(&data));
    k.apply(&manifest("noble", &tag, &mirror, None));
    k.wait_for_words("image/noble", reason, "TrustedKeysNotFound");
    eprintln!(
        "no keys yet: {}",
        k.wait_for_words("image/noble", message, "ubuntu-keys")
    );
    k.wait("image/noble", "condition=Ready=false");

    // The keys arrive, but the mirror has not published the signature yet: the transfer is
    // retried, and Ready names the missing signature meanwhile.
    let keys_file = scratch.join("keys.asc");
    std::fs::write(&keys_file, gpg.export(&[&trusted])).expect("keys file");
    k.ok(&[
        "create",
        "configmap",
        "ubuntu-keys",
        &format!("--from-file=keys.asc={}", keys_file.display()),
    ]);
    k.wait_for_words("image/noble", reason, "SignatureMissing");
    eprintln!(
        "no signature yet: {}",
        k.wait_for_words("image/noble", message, "SHA256SUMS.gpg")
    );
    k.wait("image/noble", "condition=Ready=false");

    // The signature is published: the image is uploaded, checked against the listed hash.
    release.sign(&trusted);
    k.wait("image/noble", "condition=Ready");
    let glance = client_for(&bed.demo_cloud());
    let images = tagged(&glance, &tag).await;
    assert_eq!(images.len(), 1, "one image: {images:?}");
    assert_eq!(images[0].status, GlanceStatus::Active);
    assert_eq!(
        images[0].os_hash_value.as_deref(),
        Some(hex(&sha2::Sha512::digest(&data)).as_str())
    );
    k.ok(&["delete", "image/noble", "--wait=true", "--timeout=120s"]);
    assert!(
        tagged(&glance, &tag).await.is_empty(),
        "deleted with the Image"
    );
}
