//! Keystone tokens kept on disk between runs of the CLI, when clouds.yaml asks for it the way
//! openstacksdk reads it (a top-level `cache: {auth: true}`).
//!
//! Why: a one-shot `glint apply -f` otherwise pays, before any data moves, for a new token
//! (Keystone hashes the password) and for Glance checking that unseen token with Keystone:
//! about 0.1 s on the bed, a third of a 16 MiB image's whole run. A token Glance has seen
//! before is answered from its cache.
//!
//! A token is a bearer credential until it expires, so the store is opt-in, lives in a folder
//! only its owner can read (0700, files 0600), and is read only from files that the user owns
//! and nobody else can read or write: a token planted by someone else would make glint act
//! in that someone's project. The file's name is a digest of the Keystone URL and the whole
//! token request (identity, secret and scope), as keystoneauth keys its cache: a changed
//! password, project or cloud asks for a token of its own. Every failure to read or write
//! falls back to asking Keystone; none fails a command.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A Keystone answer with its catalog is a few KiB, a large cloud's a few hundred; anything
/// past this is not a file glint wrote.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Where tokens are kept between runs.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

/// One kept token: its value and Keystone's answer that came with it (expiry, project,
/// catalog), parsed again on use exactly as a fresh answer is.
pub(crate) struct StoredToken {
    pub value: SecretString,
    pub keystone_answer: String,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    token: String,
    keystone_answer: String,
}

impl TokenStore {
    /// `$XDG_CACHE_HOME/glint/tokens`, else `~/.cache/glint/tokens`; `None` without either.
    pub fn in_user_cache() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|home| !home.is_empty())
                    .map(|home| Path::new(&home).join(".cache"))
            })?;
        Some(Self::at(base.join("glint").join("tokens")))
    }

    /// A store in `dir` (created on the first save).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file name for a token request sent to `v3_root`: a digest, so that neither the
    /// secret nor the user's name is readable from it.
    pub(crate) fn key(v3_root: &str, token_request: &serde_json::Value) -> String {
        let mut digest = Sha256::new();
        digest.update(v3_root.as_bytes());
        digest.update(b"\n");
        digest.update(token_request.to_string().as_bytes());
        digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The token kept under `key`, if there is one glint may trust.
    pub(crate) fn load(&self, key: &str) -> Option<StoredToken> {
        let path = self.path(key);
        match read_private(&path) {
            Ok(Some(file)) => Some(StoredToken {
                value: SecretString::from(file.token),
                keystone_answer: file.keystone_answer,
            }),
            Ok(None) => None,
            Err(why) => {
                tracing::debug!(path = %path.display(), %why, "kept token not used; asking Keystone");
                None
            }
        }
    }

    /// Keeps a token under `key`, replacing the one before. Written to a temporary file and
    /// renamed, so a concurrent run reads the old token or the new one, never half of one.
    pub(crate) fn save(&self, key: &str, value: &SecretString, keystone_answer: &str) {
        let file = StoredFile {
            token: value.expose_secret().to_string(),
            keystone_answer: keystone_answer.to_string(),
        };
        if let Err(why) = self.write_private(key, &file) {
            tracing::warn!(dir = %self.dir.display(), %why, "cannot keep the Keystone token for the next run");
        }
    }

    /// Forgets the token under `key` (the service refused it).
    pub(crate) fn forget(&self, key: &str) {
        let path = self.path(key);
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %err, "cannot remove a refused Keystone token");
        }
    }

    fn write_private(&self, key: &str, file: &StoredFile) -> Result<(), String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|err| format!("cannot create the folder: {err}"))?;
        let body = serde_json::to_vec(file).map_err(|err| err.to_string())?;
        let temporary = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut out| {
                // A file left from a crashed run may carry other permissions.
                out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                out.write_all(&body)?;
                out.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, self.path(key)));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("cannot write the token file: {err}"));
        }
        Ok(())
    }
}

/// Reads a kept token: `Ok(None)` when there is none, `Err` (in words, never the token) when
/// there is a file glint will not trust.
fn read_private(path: &Path) -> Result<Option<StoredFile>, String> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    let me = effective_uid();
    if metadata.uid() != me {
        return Err(format!("owned by uid {}, not by this user", metadata.uid()));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "others may read or write it (mode {:o})",
            metadata.mode() & 0o777
        ));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes is more than a token file",
            metadata.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| "not a token file glint wrote".to_string())
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes nothing, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(password: &str, project: &str) -> serde_json::Value {
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "password": password}}},
            "scope": {"project": {"name": project}}}})
    }

    #[test]
    fn the_key_changes_with_the_secret_the_scope_and_the_keystone_but_never_shows_them() {
        let base = TokenStore::key("http://k/v3", &request("pw", "demo"));
        assert_eq!(base, TokenStore::key("http://k/v3", &request("pw", "demo")));
        for (other, why) in [
            (
                TokenStore::key("http://k/v3", &request("pw2", "demo")),
                "password",
            ),
            (
                TokenStore::key("http://k/v3", &request("pw", "other")),
                "project",
            ),
            (
                TokenStore::key("http://k2/v3", &request("pw", "demo")),
                "keystone",
            ),
        ] {
            assert_ne!(base, other, "a different {why} needs its own token");
        }
        assert_eq!(base.len(), 64);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// A fresh folder per test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("glint-tokens-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    #[test]
    fn a_saved_token_is_loaded_back_from_a_folder_only_its_owner_can_read() {
        let dir = scratch("saved");
        let store = TokenStore::at(dir.path().join("tokens"));
        store.save("k", &SecretString::from("tok-1"), "{\"token\":{}}");
        let loaded = store.load("k").expect("the token just saved");
        assert_eq!(loaded.value.expose_secret(), "tok-1");
        assert_eq!(loaded.keystone_answer, "{\"token\":{}}");
        let folder = std::fs::metadata(dir.path().join("tokens")).expect("folder");
        assert_eq!(folder.mode() & 0o777, 0o700);
        let file = std::fs::metadata(dir.path().join("tokens/k.json")).expect("file");
        assert_eq!(file.mode() & 0o777, 0o600);
        store.save("k", &SecretString::from("tok-2"), "{}");
        assert_eq!(
            store.load("k").expect("replaced").value.expose_secret(),
            "tok-2"
        );
        store.forget("k");
        assert!(store.load("k").is_none());
        store.forget("k");
    }

    #[test]
    fn a_token_file_others_could_have_written_or_that_is_not_glints_is_not_used() {
        let dir = scratch("untrusted");
        let store = TokenStore::at(dir.path());
        store.save("open", &SecretString::from("tok"), "{}");
        std::fs::set_permissions(
            dir.path().join("open.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        assert!(store.load("open").is_none(), "group/other bits set");

        for (key, content) in [
            ("garbage", &b"not json"[..]),
            ("partial", &b"{\"token\":\"t\""[..]),
        ] {
            let path = dir.path().join(format!("{key}.json"));
            std::fs::write(&path, content).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            assert!(store.load(key).is_none(), "{key}");
        }

        std::fs::create_dir(dir.path().join("folder.json")).expect("mkdir");
        assert!(store.load("folder").is_none(), "a folder is not a token");
        assert!(store.load("absent").is_none());
    }
}
