//! ImageSeries that trust only signed checksums files, driven through the real `glint apply -f`
//! against mirrors laid out as Ubuntu, Fedora and AlmaLinux publish them (Python's
//! http.server), each checksums file signed with GnuPG here as the distribution signs it:
//! Ubuntu's armoured `SHA256SUMS.gpg`, AlmaLinux' `CHECKSUM.asc`, Fedora's clear-signed
//! `CHECKSUM`; a binary detached signature too. Every way a signature can fail (missing,
//! altered file, untrusted key, expired key, expired signature, no trusted keys) must keep the
//! current version, import nothing, and say why with its own reason.
//!
//! Run with `cargo test --test series_signatures -- --include-ignored --nocapture` to see
//! each case's reason as the user reads it (the closing note quotes them).
// Helpers outside #[test] fns assert with expect() too (Cargo.toml denies it in src/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::gpg::{Gpg, SignOptions};
use common::harness::client_for;
use common::layouts::Layout;
use common::mirror::{Mirror, SeriesCli};
use glint::glance::GlanceImage;

/// The checksums files a layout publishes (every compose's, for Fedora).
fn checksums_files(layout: Layout, root: &Path) -> Vec<PathBuf> {
    match layout {
        Layout::UbuntuCurrent => vec![root.join("noble/current/SHA256SUMS")],
        Layout::AlmaLatestAlias => vec![root.join("almalinux/9/cloud/x86_64/images/CHECKSUM")],
        Layout::FedoraComposes => {
            let images = root.join("releases/41/Cloud/x86_64/images");
            let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
                .expect("images folder")
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.to_string_lossy().ends_with("-CHECKSUM"))
                .collect();
            files.sort();
            files
        }
        other => panic!("{other:?} publishes no signature"),
    }
}

/// Fedora's CHECKSUM as the layout writes it, without its (placeholder) armour: what gpg signs.
fn unsigned_text(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("checksums file");
    if !text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----") {
        return text;
    }
    let body = text.split_once("\n\n").map_or("", |(_, body)| body);
    let body = body
        .split_once("-----BEGIN PGP SIGNATURE-----")
        .map_or(body, |(body, _)| body);
    body.to_string()
}

/// How each checksums file of the mirror is signed for the next apply.
#[derive(Debug, Clone, Copy)]
enum Signing<'a> {
    By(&'a str, SignOptions<'a>),
    Nothing,
}

struct Case<'a> {
    layout: Layout,
    detached: Option<&'a str>,
    mirror: &'a Mirror,
    gpg: &'a Gpg,
}

impl Case<'_> {
    fn sign(&self, signing: Signing<'_>) {
        for file in checksums_files(self.layout, self.mirror.dir()) {
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            match self.detached {
                Some(pattern) => {
                    let signature = file.with_file_name(pattern.replace("{file}", &name));
                    let _ = std::fs::remove_file(&signature);
                    if let Signing::By(key, options) = signing {
                        self.gpg.detach_sign(key, &file, &signature, options);
                    }
                }
                None => {
                    std::fs::write(&file, unsigned_text(&file)).expect("plain text");
                    if let Signing::By(key, options) = signing {
                        self.gpg.clear_sign(key, &file, options);
                    }
                }
            }
        }
    }

    /// The checksums files' unsigned text, to put back after a case changed them.
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        checksums_files(self.layout, self.mirror.dir())
            .into_iter()
            .map(|file| {
                let text = unsigned_text(&file);
                (file, text)
            })
            .collect()
    }

    fn restore(&self, snapshot: &[(PathBuf, String)]) {
        for (file, text) in snapshot {
            std::fs::write(file, text).expect("restore");
        }
    }

    /// Changes one listed digest after signing, as an attacker (or a broken sync) would.
    fn alter(&self) {
        let file = checksums_files(self.layout, self.mirror.dir())
            .pop()
            .expect("a checksums file");
        let text = std::fs::read_to_string(&file).expect("read");
        let at = text.find(" = ").map_or(0, |at| at + 3);
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        std::fs::write(&file, bytes).expect("write");
    }
}

fn current_version(found: &[(String, GlanceImage)]) -> Vec<String> {
    found
        .iter()
        .filter(|(_, image)| image.properties.contains_key("glint.dev/latest"))
        .map(|(version, _)| version.clone())
        .collect()
}

async fn follow_signed(layout: Layout, detached: Option<&str>, binary_at_the_end: bool) {
    let bed = glance_under_test!();
    let cli = SeriesCli::with_bed(&bed);
    let mirror = Mirror::start(&cli.dir.join("mirror"));
    let gpg = Gpg::new();
    // Distributions sign with RSA; the others are quicker to make.
    let trusted = gpg.key("Distro <cd@distro.invalid>", "rsa3072", "never", None);
    let stranger = gpg.key("Stranger <x@elsewhere.invalid>", "ed25519", "never", None);
    let expired = gpg.key(
        "Old <old@distro.invalid>",
        "ed25519",
        "1d",
        Some("20200101T000000"),
    );
    let since_2020 = gpg.key(
        "Since 2020 <cd2020@distro.invalid>",
        "ed25519",
        "never",
        Some("20200101T000000"),
    );
    let keys = gpg.export(&[&trusted, &expired, &since_2020]);
    let name = common::unique("signed");
    let key = format!("default/{name}");
    let detached_line =
        detached.map_or(String::new(), |name| format!("      detached: '{name}'\n"));
    let manifest = cli.manifest(
        &name,
        &format!(
            "  image: {{diskFormat: raw}}\n  keep: 2\n{}    signature:\n{detached_line}      keys: {{configMapName: distro-keys}}\n",
            layout.checksums_spec(&mirror.url(""))
        ),
    );
    let series_only = std::fs::read_to_string(&manifest).expect("manifest");
    let indented: String = keys.lines().map(|line| format!("    {line}\n")).collect();
    let with_keys = format!(
        "{series_only}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: distro-keys}}\ndata:\n  keys.asc: |\n{indented}"
    );
    std::fs::write(&manifest, &with_keys).expect("manifest with keys");
    let apply = || cli.run(&["apply", "-f", &manifest]);
    let glance = client_for(&bed.demo_cloud());
    let case = Case {
        layout,
        detached,
        mirror: &mirror,
        gpg: &gpg,
    };
    let data = |n: u32| common::pseudo_random_bytes(100_000 + n as usize, u64::from(n));
    let version = |n: u32| {
        layout
            .version(n)
            .unwrap_or_else(|| layout.modified_version(n))
    };
    let armoured = SignOptions {
        armor: true,
        ..SignOptions::default()
    };

    // v1 signed by the distribution's key: believed, imported, current.
    layout.publish(mirror.dir(), 1, &data(1), true);
    case.sign(Signing::By(&trusted, armoured));
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{layout:?} v1 signed: {out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    assert_eq!(current_version(&found), [version(1)], "{layout:?}");

    // v2 published; each bad signature keeps v1 current and imports nothing.
    layout.publish(mirror.dir(), 2, &data(2), true);
    let in_the_past = |expires| SignOptions {
        armor: true,
        at: Some("20200101T120000"),
        expires,
        ..SignOptions::default()
    };
    type Failure<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str, Option<&'a str>);
    let failures: Vec<Failure> = vec![
        (
            "no signature",
            Box::new(|| case.sign(Signing::Nothing)),
            "SignatureMissing",
            None,
        ),
        (
            "signed by a key the series does not trust",
            Box::new(|| case.sign(Signing::By(&stranger, armoured))),
            "SignatureUnknownKey",
            Some(stranger.as_str()),
        ),
        (
            "altered after signing",
            Box::new(|| {
                case.sign(Signing::By(&trusted, armoured));
                case.alter();
            }),
            "SignatureBad",
            Some(trusted.as_str()),
        ),
        (
            "signed by a trusted key that has expired",
            Box::new(|| case.sign(Signing::By(&expired, in_the_past(None)))),
            "SignatureKeyExpired",
            Some(expired.as_str()),
        ),
        (
            "a signature that has expired",
            Box::new(|| case.sign(Signing::By(&since_2020, in_the_past(Some("1d"))))),
            "SignatureExpired",
            Some(since_2020.as_str()),
        ),
    ];
    let published = case.snapshot();
    for (what, prepare, reason, names) in failures {
        case.restore(&published);
        prepare();
        let (code, out) = apply();
        eprintln!(
            "{layout:?}, {what}: {}",
            out.lines().find(|l| l.contains(reason)).unwrap_or(&out)
        );
        assert_eq!(code, Some(1), "{layout:?}, {what}: {out}");
        assert!(
            out.contains(reason),
            "{layout:?}, {what}: wants {reason}: {out}"
        );
        if let Some(fingerprint) = names {
            assert!(
                out.contains(fingerprint),
                "{layout:?}, {what}: names {fingerprint}: {out}"
            );
        }
        let found = common::mirror::series_versions(&glance, &key).await;
        let versions: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(
            versions,
            [version(1)],
            "{layout:?}, {what}: nothing imported"
        );
        assert_eq!(current_version(&found), [version(1)], "{layout:?}, {what}");
    }

    // Without the keys' ConfigMap the CLI cannot know whom to trust, and says what to add.
    std::fs::write(&manifest, &series_only).expect("manifest without keys");
    case.sign(Signing::By(&trusted, armoured));
    let (code, out) = apply();
    assert_eq!(code, Some(1), "{layout:?}, no keys: {out}");
    assert!(
        out.contains("TrustedKeysNotFound") && out.contains("distro-keys"),
        "{out}"
    );
    std::fs::write(&manifest, &with_keys).expect("manifest with keys");

    // Signed properly again (binary, where the test asks): v2 becomes current.
    case.restore(&published);
    let options = if binary_at_the_end {
        SignOptions::default()
    } else {
        armoured
    };
    case.sign(Signing::By(&trusted, options));
    let (code, out) = apply();
    assert_eq!(code, Some(0), "{layout:?} v2 signed: {out}");
    let found = common::mirror::series_versions(&glance, &key).await;
    eprintln!("{layout:?}: {}", common::mirror::timeline(&found));
    assert_eq!(current_version(&found), [version(2)], "{layout:?}");
}

#[tokio::test]
#[ignore = "needs gpg (Debian's gnupg): scripts/test installs it"]
async fn ubuntu_sha256sums_are_believed_only_with_a_good_signature_by_a_trusted_key() {
    follow_signed(Layout::UbuntuCurrent, Some("{file}.gpg"), true).await;
}

#[tokio::test]
#[ignore = "needs gpg (Debian's gnupg): scripts/test installs it"]
async fn fedora_clear_signed_checksums_are_believed_only_with_a_good_signature_by_a_trusted_key() {
    follow_signed(Layout::FedoraComposes, None, false).await;
}

#[tokio::test]
#[ignore = "needs gpg (Debian's gnupg): scripts/test installs it"]
async fn almalinux_checksum_asc_is_believed_only_with_a_good_signature_by_a_trusted_key() {
    follow_signed(Layout::AlmaLatestAlias, Some("{file}.asc"), false).await;
}

/// Waits until the ImageSeries' jsonpath `path` reads `words` (kubectl wait matches whole
/// values only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real services and gpg: scripts/test runs it (see tests/README.md)"]
async fn glint_run_keeps_the_current_version_and_says_why_while_a_signature_does_not_check_out() {
    use common::kubectl::{GlintProcess, Kubectl};
    let bed = require_testbed!();
    let cluster = common::cluster::cluster();
    let k = Kubectl::in_fresh_namespace(&cluster, "signed");
    let namespace = k.namespace.clone();
    k.install_with_cloud_secret(&bed.demo_cloud());
    k.wait("crd/imageseries.glint.dev", "condition=Established");
    let scratch = std::env::temp_dir().join(&namespace);
    let layout = Layout::UbuntuCurrent;
    let mirror = Mirror::start(&scratch.join("mirror"));
    let gpg = Gpg::new();
    let trusted = gpg.key("Distro <cd@distro.invalid>", "rsa3072", "never", None);
    let stranger = gpg.key("Stranger <x@elsewhere.invalid>", "ed25519", "never", None);
    let case = Case {
        layout,
        detached: Some("{file}.gpg"),
        mirror: &mirror,
        gpg: &gpg,
    };
    let armoured = SignOptions {
        armor: true,
        ..SignOptions::default()
    };
    let log = scratch.join("glint.log");
    eprintln!("glint's log: {}", log.display());
    let _glint = GlintProcess::start(&k.kubeconfig, &namespace, &log, &[]);
    let data = |n: u32| common::pseudo_random_bytes(120_000, 40 + u64::from(n));
    let refresh = |round: u32| {
        k.ok(&[
            "annotate",
            "imageseries/ubuntu",
            &format!("glint.dev/reconcile-requested-at=round-{round}"),
            "--overwrite",
        ]);
    };
    let reason = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    let message = "{.status.conditions[?(@.type==\"Ready\")].message}";

    // The series names a ConfigMap that is not there yet: nothing is believed, and it says so.
    layout.publish(mirror.dir(), 1, &data(1), true);
    case.sign(Signing::By(&trusted, armoured));
    k.apply(&format!(
        "apiVersion: glint.dev/v1alpha1\nkind: ImageSeries\nmetadata: {{name: ubuntu}}\nspec:\n  cloudCredentialsRef: {{secretName: cloud, cloudName: bed}}\n  image: {{diskFormat: raw}}\n  schedule: {{every: 168h}}\n{}    signature:\n      detached: '{{file}}.gpg'\n      keys: {{configMapName: ubuntu-keys}}\n",
        layout.checksums_spec(&mirror.url(""))
    ));
    k.wait_for_words("imageseries/ubuntu", reason, "TrustedKeysNotFound");
    eprintln!(
        "no keys yet: {}",
        k.wait_for_words("imageseries/ubuntu", message, "ubuntu-keys")
    );
    k.wait("imageseries/ubuntu", "condition=Ready=false");

    // The keys arrive (as kubectl create configmap --from-file writes them): v1 is current.
    let keys_file = scratch.join("keys.asc");
    std::fs::write(&keys_file, gpg.export(&[&trusted])).expect("keys file");
    k.ok(&[
        "create",
        "configmap",
        "ubuntu-keys",
        &format!("--from-file=keys.asc={}", keys_file.display()),
    ]);
    refresh(1);
    let v1 = layout.modified_version(1);
    k.wait(
        "imageseries/ubuntu",
        &format!("jsonpath={{.status.current}}={v1}"),
    );
    k.wait("imageseries/ubuntu", "condition=Ready");

    // v2 signed by a stranger: v1 stays current, Ready is False with the reason and the key.
    layout.publish(mirror.dir(), 2, &data(2), true);
    case.sign(Signing::By(&stranger, armoured));
    refresh(2);
    k.wait_for_words("imageseries/ubuntu", reason, "SignatureUnknownKey");
    let said = k.wait_for_words("imageseries/ubuntu", message, &stranger);
    eprintln!("v2 by a stranger: {said}");
    k.wait("imageseries/ubuntu", "condition=Ready=false");
    let current = k.ok(&[
        "get",
        "imageseries/ubuntu",
        "-o",
        "jsonpath={.status.current}",
    ]);
    assert_eq!(current, v1, "the current version stays");
    let glance = client_for(&bed.demo_cloud());
    let held = common::mirror::series_versions(&glance, &format!("{namespace}/ubuntu")).await;
    assert_eq!(
        held.len(),
        1,
        "nothing imported: {}",
        common::mirror::timeline(&held)
    );

    // Signed by the distribution's key: v2 takes over.
    case.sign(Signing::By(&trusted, armoured));
    refresh(3);
    let v2 = layout.modified_version(2);
    k.wait(
        "imageseries/ubuntu",
        &format!("jsonpath={{.status.current}}={v2}"),
    );
    k.wait("imageseries/ubuntu", "condition=Ready");
}

/// The validity rules glint adds to rPGP's maths, on keys shaped as distributions' are: a
/// signing subkey (AlmaLinux 8 signed with one), a revoked subkey, a key whose newest
/// self-signature is a user id's revocation, and a text-mode signature.
#[test]
#[ignore = "needs gpg (Debian's gnupg): scripts/test installs it"]
fn subkeys_revocations_and_text_signatures_are_judged_as_gnupg_judges_them() {
    use glint::checksums::signature::{Signed, TrustedKeys, verify};
    let gpg = Gpg::new();
    let dir = std::env::temp_dir().join(common::unique("sigrules"));
    std::fs::create_dir_all(&dir).expect("dir");
    let sums = dir.join("SHA256SUMS");
    std::fs::write(&sums, format!("{}  disk.img\n", "ab".repeat(32))).expect("sums");
    let data = std::fs::read(&sums).expect("read");
    let now = jiff::Timestamp::now();
    let check = |key: &str, options: SignOptions, trusted: &[&str]| {
        let signature = dir.join("sig");
        gpg.detach_sign(key, &sums, &signature, options);
        let bytes = std::fs::read(&signature).expect("signature");
        let keys = TrustedKeys::parse(&gpg.export(trusted)).expect("keys");
        verify(
            "SHA256SUMS",
            Signed::Detached {
                data: &data,
                signature: &bytes,
            },
            &keys,
            now,
        )
    };

    // A signing subkey of a trusted key signs for it; the signer named is the subkey.
    let primary = gpg.key("Alma <alma@distro.invalid>", "ed25519", "never", None);
    let subkey = gpg.subkey(&primary, "ed25519", "never");
    let verified =
        check(&format!("{subkey}!"), SignOptions::default(), &[&primary]).expect("subkey");
    assert_eq!(verified.signer, subkey);
    // A text-mode signature covers the lines.
    let text = SignOptions {
        text: true,
        ..SignOptions::default()
    };
    assert!(check(&primary, text, &[&primary]).is_ok(), "text mode");

    // The subkey revoked: its signatures no longer count.
    let signature = dir.join("by-subkey");
    gpg.detach_sign(
        &format!("{subkey}!"),
        &sums,
        &signature,
        SignOptions::default(),
    );
    gpg.revoke_only_subkey(&primary);
    let keys = TrustedKeys::parse(&gpg.export(&[&primary])).expect("keys");
    let bytes = std::fs::read(&signature).expect("signature");
    let refused = verify(
        "SHA256SUMS",
        Signed::Detached {
            data: &data,
            signature: &bytes,
        },
        &keys,
        now,
    )
    .expect_err("revoked subkey");
    assert_eq!(
        refused.reason().as_str(),
        "SignatureKeyExpired",
        "{refused}"
    );
    assert!(refused.to_string().contains("revoked"), "{refused}");

    // A key that expired in 2020, whose newest self-signature revokes a second user id: the
    // revocation says nothing of expiry, and the key stays expired.
    let old = gpg.key(
        "Old <old@distro.invalid>",
        "ed25519",
        "1d",
        Some("20200101T000000"),
    );
    gpg.add_uid(&old, "Old too <old2@distro.invalid>", "20200101T010000");
    gpg.revoke_uid(&old, "Old too <old2@distro.invalid>", "20200101T020000");
    let past = SignOptions {
        at: Some("20200101T030000"),
        ..SignOptions::default()
    };
    let refused = check(&old, past, &[&old]).expect_err("expired");
    assert_eq!(
        refused.reason().as_str(),
        "SignatureKeyExpired",
        "{refused}"
    );
    assert!(
        refused.to_string().contains("expired at 2020-01-02"),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
