//! GnuPG in a keyring of the test's own, signing files as distributions sign their checksums
//! files: keys made on the spot (some already expired, through gpg's faked clock), detached
//! signatures (armoured or binary) and clear-signed files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway GNUPGHOME; its agent is stopped and the folder removed when dropped.
pub struct Gpg {
    home: PathBuf,
    gpg: String,
}

/// How to sign.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions<'a> {
    pub armor: bool,
    /// `--textmode`: a signature over the file's lines (type 0x01) rather than its bytes.
    pub text: bool,
    /// gpg's `--faked-system-time` (`20200101T120000`): sign as if it were then.
    pub at: Option<&'a str>,
    /// `--default-sig-expire` (`1d`): a signature that expires.
    pub expires: Option<&'a str>,
}

impl Gpg {
    pub fn new() -> Self {
        // Short: the agent's socket path must fit in about 107 characters.
        let home = PathBuf::from(format!("/tmp/gg-{}", super::unique("k")));
        std::fs::create_dir_all(&home).expect("GNUPGHOME");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Self {
            home,
            gpg: super::tools::gpg(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.gpg)
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("run gpg");
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A new signing key (`algorithm`: ed25519, rsa3072, ...; `expire`: never, 1d, ...),
    /// made at `at` if given; returns its fingerprint.
    pub fn key(&self, uid: &str, algorithm: &str, expire: &str, at: Option<&str>) -> String {
        let faked = at.map(|at| format!("{at}!"));
        let mut args = Vec::new();
        if let Some(faked) = &faked {
            args.extend(["--faked-system-time", faked.as_str()]);
        }
        args.extend(["--quick-gen-key", uid, algorithm, "sign", expire]);
        self.run(&args);
        let listing = self.run(&["--with-colons", "--list-keys", uid]);
        listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|field| field.len() == 40))
            .expect("the new key's fingerprint")
            .to_string()
    }

    /// A signing subkey of `primary`, made at `at` if given; returns its fingerprint.
    pub fn subkey(&self, primary: &str, algorithm: &str, expire: &str) -> String {
        self.run(&["--quick-add-key", primary, algorithm, "sign", expire]);
        let listing = self.run(&["--with-colons", "--list-keys", primary]);
        // The fpr line after the last sub line is the newest subkey's.
        let mut after_sub = false;
        let mut newest = None;
        for line in listing.lines() {
            if line.starts_with("sub:") {
                after_sub = true;
            } else if after_sub && let Some(rest) = line.strip_prefix("fpr:") {
                newest = rest
                    .split(':')
                    .find(|field| field.len() == 40)
                    .map(str::to_string);
                after_sub = false;
            }
        }
        newest.expect("the new subkey's fingerprint")
    }

    /// Revokes the only subkey of `primary` (gpg's key editor, driven from stdin).
    pub fn revoke_only_subkey(&self, primary: &str) {
        use std::io::Write;
        let mut child = Command::new(&self.gpg)
            .env("GNUPGHOME", &self.home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--command-fd",
                "0",
                "--edit-key",
                primary,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gpg --edit-key");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"key 1\nrevkey\ny\n0\n\ny\nsave\n")
            .expect("commands");
        assert!(
            child.wait().expect("gpg").success(),
            "revoking the subkey failed"
        );
    }

    /// Revokes a user id of `primary` made at `at` (a self-signature newer than the others).
    pub fn revoke_uid(&self, primary: &str, uid: &str, at: &str) {
        let faked = format!("{at}!");
        self.run(&[
            "--faked-system-time",
            &faked,
            "--quick-revoke-uid",
            primary,
            uid,
        ]);
    }

    /// Adds a user id to `primary`, at `at`.
    pub fn add_uid(&self, primary: &str, uid: &str, at: &str) {
        let faked = format!("{at}!");
        self.run(&[
            "--faked-system-time",
            &faked,
            "--quick-add-uid",
            primary,
            uid,
        ]);
    }

    /// The public keys, ASCII-armoured, as `gpg --armor --export` writes them.
    pub fn export(&self, fingerprints: &[&str]) -> String {
        let mut args = vec!["--armor", "--export"];
        args.extend(fingerprints);
        self.run(&args)
    }

    /// Signs `file` with a detached signature written to `out`.
    pub fn detach_sign(&self, fingerprint: &str, file: &Path, out: &Path, options: SignOptions) {
        let faked = options.at.map(|at| format!("{at}!"));
        let (file, out) = (file.display().to_string(), out.display().to_string());
        let mut args = vec!["--yes", "--local-user", fingerprint];
        if let Some(faked) = &faked {
            args.extend(["--faked-system-time", faked.as_str()]);
        }
        if let Some(expires) = options.expires {
            args.extend(["--default-sig-expire", expires]);
        }
        if options.armor {
            args.push("--armor");
        }
        if options.text {
            args.push("--textmode");
        }
        args.extend([
            "--digest-algo",
            "SHA512",
            "--detach-sign",
            "--output",
            &out,
            &file,
        ]);
        self.run(&args);
    }

    /// Replaces `file` with itself clear-signed (as Fedora's CHECKSUM is); `options.armor`
    /// does not apply.
    pub fn clear_sign(&self, fingerprint: &str, file: &Path, options: SignOptions) {
        let signed = file.with_extension("clearsigned");
        let faked = options.at.map(|at| format!("{at}!"));
        let (input, out) = (file.display().to_string(), signed.display().to_string());
        let mut args = vec!["--yes", "--local-user", fingerprint];
        if let Some(faked) = &faked {
            args.extend(["--faked-system-time", faked.as_str()]);
        }
        if let Some(expires) = options.expires {
            args.extend(["--default-sig-expire", expires]);
        }
        args.extend([
            "--digest-algo",
            "SHA256",
            "--clearsign",
            "--output",
            &out,
            &input,
        ]);
        self.run(&args);
        std::fs::rename(&signed, file).expect("replace with the clear-signed file");
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
