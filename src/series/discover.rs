//! Finding a series' releases on a mirror as distributions publish them, without edits:
//!
//! | layout | spec.checksums | where the version comes from |
//! |---|---|---|
//! | one checksums file (AlmaLinux `CHECKSUM`) | `url` = the file | the pattern's `version` group |
//! | a folder per release (CirrOS `0.6.3/`, Debian `20241201-1949/`, Ubuntu serials) | `url` = the parent folder, `folders`, `file` = the checksums file's name | the pattern's group, else the folder's |
//! | checksums files named per release (Fedora `...-41-1.4-x86_64-CHECKSUM`) | `url` = their folder, `file` = a pattern with a `version` group | the pattern's group, else the file's |
//! | a name that never changes (Ubuntu `current/`, Debian `latest/`) | a pattern without a `version` group | the file's Last-Modified: `YYYYMMDD-HHMMSS` |
//!
//! An alias that names the same bytes as a dated file (AlmaLinux' `-latest`) is one release.
//! Two different builds never share a version: [`super::plan`] gives a rebuilt version a
//! digest suffix.
//!
//! Everything read here is untrusted: each document is bounded (size and time, in
//! [`crate::transfer::source_http`]), a check reads at most [`MAX_FETCHES`] documents, and
//! index pages are read tolerantly ([`super::index`]).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::index::{self, Listed};
use super::{Release, ReleasesError, version};
use crate::checksums::signature::{self, Signed, TrustedKeys};
use crate::checksums::{self, signed};
use crate::crd::{ChecksumsSignature, ChecksumsSource, ImageSource, SourceHash};
use crate::transfer::SourcePolicy;
use crate::transfer::source_http::{self, FetchError};

/// The largest checksums file or index page glint reads; distributions' are a few KiB.
pub const DOCUMENT_LIMIT: usize = signed::CHECKSUMS_LIMIT;

/// The most documents (index pages, checksums files, signatures, HEADs) one check reads.
pub const MAX_FETCHES: usize = 40;

/// How many folders (or per-release checksums files) beyond `keep` a check reads, newest
/// first, to step over ones the mirror has not finished publishing.
const SPARE_FOLDERS: usize = 3;

/// What a check found: the releases, and what it stepped over on the way.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Published {
    /// Newest first is not promised; the plan orders them.
    pub releases: Vec<Release>,
    /// Folders or files the index lists that gave no release (not complete on the mirror
    /// yet, say), in words for status.
    pub skipped: Vec<String>,
}

/// How spec.checksums.file names the checksums file of a folder.
#[derive(Debug)]
enum FileRule {
    /// `url` is the checksums file itself.
    Url,
    /// The same name in every folder.
    Named(String),
    /// Files of the folder's index that match, each a release's (Fedora).
    Matching(regex::Regex),
}

/// spec.checksums, checked and compiled.
#[derive(Debug)]
pub struct Layout {
    url: url::Url,
    folders: Option<regex::Regex>,
    file: FileRule,
    pattern: regex::Regex,
    url_template: Option<String>,
}

/// A regular expression that must match a whole name; `what` names the field for errors.
fn whole(what: &str, pattern: &str) -> Result<regex::Regex, ReleasesError> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|err| ReleasesError::Pattern(format!("{what}: {err}")))
}

fn has_version_group(pattern: &regex::Regex) -> bool {
    pattern.capture_names().any(|name| name == Some("version"))
}

impl Layout {
    pub fn of(source: &ChecksumsSource) -> Result<Self, ReleasesError> {
        let url = url::Url::parse(&source.url).map_err(|err| ReleasesError::Url {
            url: source.url.clone(),
            reason: err.to_string(),
        })?;
        let pattern = whole("spec.checksums.pattern", &source.pattern)?;
        let folders = match &source.folders {
            None => None,
            Some(folders) => {
                let folders = whole("spec.checksums.folders", folders)?;
                if !has_version_group(&folders) {
                    return Err(ReleasesError::Pattern(
                        "spec.checksums.folders has no group named version, as in (?P<version>[0-9.]+)".into(),
                    ));
                }
                Some(folders)
            }
        };
        let file = match source.file.as_deref() {
            None => FileRule::Url,
            Some(file) if file.contains("<version>") => {
                FileRule::Matching(whole("spec.checksums.file", file)?)
            }
            Some(file) => FileRule::Named(file.to_string()),
        };
        let in_folder = folders.is_some() || !matches!(file, FileRule::Url);
        if in_folder && !url.path().ends_with('/') {
            return Err(ReleasesError::Url {
                url: source.url.clone(),
                reason:
                    "with folders or file, url is the folder whose index lists them and ends in /"
                        .into(),
            });
        }
        if folders.is_some() && matches!(file, FileRule::Url) {
            return Err(ReleasesError::Url {
                url: source.url.clone(),
                reason: "with folders, file names the checksums file in each folder (for example SHA256SUMS)".into(),
            });
        }
        Ok(Self {
            url,
            folders,
            file,
            pattern,
            url_template: source.url_template.clone(),
        })
    }

    /// Whether the check reads more than one checksums file (so one missing is not fatal).
    fn is_multi(&self) -> bool {
        self.folders.is_some() || matches!(self.file, FileRule::Matching(_))
    }
}

/// One file a checksums file vouches for, before its version is settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// From the pattern, the checksums file's name or the folder; `None` when only the
    /// mirror's Last-Modified can say.
    pub version: Option<String>,
    pub url: String,
    pub hash: SourceHash,
}

/// The files `text` (the checksums file at `at`) lists under the pattern. `outer` is the
/// version the checksums file's own name or its folder carries.
pub fn found_in(
    layout: &Layout,
    at: &url::Url,
    text: &str,
    outer: Option<&str>,
) -> Result<Vec<Found>, ReleasesError> {
    let entries = checksums::parse(text)?;
    let mut found = Vec::new();
    for entry in &entries {
        let Some(captures) = layout.pattern.captures(&entry.file) else {
            continue;
        };
        let version = captures
            .name("version")
            .map(|group| group.as_str().to_string())
            .filter(|version| !version.is_empty())
            .or_else(|| outer.map(str::to_string));
        let url = match &layout.url_template {
            Some(template) => {
                let filled = template
                    .replace("{file}", &entry.file)
                    .replace("{version}", version.as_deref().unwrap_or_default());
                url::Url::parse(&filled).map_err(|err| ReleasesError::Url {
                    url: filled.clone(),
                    reason: format!("spec.checksums.urlTemplate gave no URL: {err}"),
                })?
            }
            None => at.join(&entry.file).map_err(|err| ReleasesError::Url {
                url: at.to_string(),
                reason: format!("{} does not resolve beside it: {err}", entry.file),
            })?,
        };
        found.push(Found {
            version,
            url: url.to_string(),
            hash: SourceHash {
                algorithm: entry.algorithm,
                value: entry.digest.clone(),
            },
        });
    }
    if found.is_empty() {
        let mut listed: Vec<&str> = entries.iter().map(|entry| entry.file.as_str()).collect();
        listed.truncate(5);
        return Err(ReleasesError::NoMatch {
            pattern: layout.pattern.as_str().to_string(),
            listed: listed.join(", "),
        });
    }
    Ok(found)
}

/// The entries of an index that match `pattern` (folders or files, as asked), with their
/// versions, newest first.
pub fn newest_matching(
    listed: &[Listed],
    pattern: &regex::Regex,
    folders: bool,
) -> Vec<(String, String)> {
    let mut matching: Vec<(String, String)> = listed
        .iter()
        .filter(|entry| entry.folder == folders)
        .filter_map(|entry| {
            let version = pattern.captures(&entry.name)?.name("version")?.as_str();
            (!version.is_empty()).then(|| (entry.name.clone(), version.to_string()))
        })
        .collect();
    matching.sort_by(|a, b| version::compare(&b.1, &a.1));
    matching
}

/// One release per set of identical bytes: an alias (`-latest`) that lists the same digest
/// as a dated file is that file's release. Of such a set, the version with digits wins (a
/// date or a number, not a word), then the newest. Then one release per version, the first
/// found (the newest folder's).
pub fn merge_aliases(found: Vec<Found>) -> Vec<Found> {
    let rank = |item: &Found| {
        let version = item.version.as_deref().unwrap_or_default();
        (
            item.version.is_some(),
            version.bytes().any(|b| b.is_ascii_digit()),
        )
    };
    let mut kept: Vec<Found> = Vec::new();
    // By digest: a large checksums file with a broad pattern stays linear.
    let mut by_digest: std::collections::BTreeMap<String, usize> = Default::default();
    for item in found {
        match by_digest
            .get(&item.hash.value)
            .and_then(|&at| kept.get_mut(at))
        {
            Some(same) => {
                let better = rank(&item) > rank(same)
                    || (rank(&item) == rank(same)
                        && version::compare(
                            item.version.as_deref().unwrap_or_default(),
                            same.version.as_deref().unwrap_or_default(),
                        )
                        .is_gt());
                if better {
                    *same = item;
                }
            }
            None => {
                by_digest.insert(item.hash.value.clone(), kept.len());
                kept.push(item);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    kept.retain(|item| match &item.version {
        Some(version) => seen.insert(version.clone()),
        None => true,
    });
    kept
}

/// The version a file whose name never changes gets from its Last-Modified time.
pub fn version_from_modified(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%d-%H%M%S").to_string()
}

/// Reads documents from a mirror under the source policy, counting them against
/// [`MAX_FETCHES`].
struct Reader {
    policy: Arc<SourcePolicy>,
    fetches: usize,
}

impl Reader {
    fn count(&mut self, url: &url::Url) -> Result<(), ReleasesError> {
        self.fetches += 1;
        if self.fetches > MAX_FETCHES {
            return Err(ReleasesError::Unavailable(format!(
                "a check reads at most {MAX_FETCHES} documents from the mirror, and {url} would be one more; narrow spec.checksums.folders or lower keep"
            )));
        }
        Ok(())
    }

    // Boxed: one copy of the fetch's code, however many places await it (inlined into each
    // await point, it cost the release binary tens of KiB).
    fn text<'a>(&'a mut self, url: &'a url::Url) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async move {
            self.count(url).map_err(|err| FetchError {
                message: err.to_string(),
                missing: false,
            })?;
            source_http::fetch_text(self.policy.clone(), url.as_str(), DOCUMENT_LIMIT).await
        })
    }

    fn bytes<'a>(&'a mut self, url: &'a url::Url) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move {
            self.count(url).map_err(|err| FetchError {
                message: err.to_string(),
                missing: false,
            })?;
            source_http::fetch_bytes(self.policy.clone(), url.as_str(), signed::SIGNATURE_LIMIT)
                .await
        })
    }

    /// The part of a checksums file its signature covers, once the signature checks out.
    async fn signed_text(
        &mut self,
        signature: &ChecksumsSignature,
        keys: Option<&TrustedKeys>,
        file: &url::Url,
        text: String,
    ) -> Result<String, ReleasesError> {
        let keys = keys.ok_or_else(|| {
            ReleasesError::Signature(signature::SignatureError::Keys(
                "none were given to this check".into(),
            ))
        })?;
        let now = jiff::Timestamp::now();
        let verified = match &signature.detached {
            None => signature::verify(file.as_str(), Signed::ClearSigned(&text), keys, now),
            Some(detached) => {
                let signature_url =
                    signed::detached_url(file, detached).map_err(|err| ReleasesError::Url {
                        url: file.to_string(),
                        reason: format!(
                            "spec.checksums.signature.detached {detached:?} must name a file beside it: {err}"
                        ),
                    })?;
                let bytes = match self.bytes(&signature_url).await {
                    Ok(bytes) => bytes,
                    Err(err) if err.missing => {
                        return Err(ReleasesError::Signature(
                            signature::SignatureError::Missing(format!(
                                "{file} has no signature at {signature_url} ({}); the mirror may still be syncing, or spec.checksums.signature.detached names the wrong file",
                                err.message
                            )),
                        ));
                    }
                    Err(err) => return Err(ReleasesError::Unavailable(err.message)),
                };
                let signed = Signed::Detached {
                    data: text.as_bytes(),
                    signature: &bytes,
                };
                signature::verify(file.as_str(), signed, keys, now)
            }
        };
        let verified = verified.map_err(ReleasesError::Signature)?;
        tracing::debug!(file = %file, signer = %verified.signer, "checksums file signature verified");
        Ok(verified.text)
    }

    async fn index(&mut self, folder: &url::Url) -> Result<Vec<Listed>, ReleasesError> {
        let page = self
            .text(folder)
            .await
            .map_err(|err| ReleasesError::Unavailable(err.message))?;
        Ok(index::names(folder, &page))
    }
}

fn join_folder(base: &url::Url, name: &str) -> Result<url::Url, ReleasesError> {
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    base.join(&format!("{encoded}/"))
        .map_err(|err| ReleasesError::Url {
            url: base.to_string(),
            reason: format!("{name}/ does not resolve in it: {err}"),
        })
}

/// The releases the mirror publishes now, as spec.checksums describes its layout; enough
/// folders are read for `keep` releases.
/// `keys` are the series' trusted keys, read from the ConfigMap or Secret its
/// spec.checksums.signature names (none when it names none).
pub fn published<'a>(
    source: &'a ChecksumsSource,
    policy: Arc<SourcePolicy>,
    keep: usize,
    keys: Option<&'a TrustedKeys>,
) -> BoxFuture<'a, Result<Published, ReleasesError>> {
    // Boxed: the controller and the CLI share one copy of the check's code.
    Box::pin(discover(source, policy, keep, keys))
}

async fn discover(
    source: &ChecksumsSource,
    policy: Arc<SourcePolicy>,
    keep: usize,
    keys: Option<&TrustedKeys>,
) -> Result<Published, ReleasesError> {
    let layout = Layout::of(source)?;
    let mut reader = Reader { policy, fetches: 0 };
    let budget = keep.saturating_add(SPARE_FOLDERS);
    let folders: Vec<(url::Url, Option<String>)> = match &layout.folders {
        None => vec![(layout.url.clone(), None)],
        Some(pattern) => {
            let listed = reader.index(&layout.url).await?;
            let matching = newest_matching(&listed, pattern, true);
            if matching.is_empty() {
                return Err(ReleasesError::NoMatch {
                    pattern: pattern.as_str().to_string(),
                    listed: describe(&listed),
                });
            }
            matching
                .into_iter()
                .take(budget)
                .map(|(name, version)| Ok((join_folder(&layout.url, &name)?, Some(version))))
                .collect::<Result<_, ReleasesError>>()?
        }
    };
    let mut published = Published::default();
    let mut found: Vec<Found> = Vec::new();
    let mut last_error = None;
    'folders: for (folder, folder_version) in folders {
        let files: Vec<(url::Url, Option<String>)> = match &layout.file {
            FileRule::Url => vec![(folder.clone(), folder_version.clone())],
            FileRule::Named(name) => vec![(
                folder.join(name).map_err(|err| ReleasesError::Url {
                    url: folder.to_string(),
                    reason: format!("{name} does not resolve in it: {err}"),
                })?,
                folder_version.clone(),
            )],
            FileRule::Matching(pattern) => {
                let listed = reader.index(&folder).await?;
                newest_matching(&listed, pattern, false)
                    .into_iter()
                    .take(budget)
                    .map(|(name, version)| {
                        let url = folder.join(&name).map_err(|err| ReleasesError::Url {
                            url: folder.to_string(),
                            reason: format!("{name} does not resolve in it: {err}"),
                        })?;
                        Ok((url, Some(version)))
                    })
                    .collect::<Result<_, ReleasesError>>()?
            }
        };
        for (file, outer) in files {
            let text = match reader.text(&file).await {
                Ok(text) => text,
                // One release's folder or file not there (yet): mirrors publish folders
                // before their checksums files. Older ones still count.
                Err(err) if err.missing && layout.is_multi() => {
                    published
                        .skipped
                        .push(format!("{file} is not there ({err})"));
                    continue;
                }
                Err(err) => return Err(ReleasesError::Unavailable(err.message)),
            };
            // A signature that does not check out fails the whole check: nothing from this
            // mirror is believed until it does, and the current version stays.
            let text = match &source.signature {
                Some(signature) => reader.signed_text(signature, keys, &file, text).await?,
                None => text,
            };
            match found_in(&layout, &file, &text, outer.as_deref()) {
                Ok(items) => found.extend(items),
                Err(err) if layout.is_multi() => {
                    published.skipped.push(format!("{file}: {err}"));
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
            let versions: std::collections::BTreeSet<_> =
                found.iter().filter_map(|f| f.version.clone()).collect();
            if versions.len() >= keep {
                break 'folders;
            }
        }
    }
    let merged = merge_aliases(found);
    if merged.is_empty() {
        return Err(last_error.unwrap_or(ReleasesError::NoMatch {
            pattern: layout.pattern.as_str().to_string(),
            listed: published.skipped.join("; "),
        }));
    }
    for item in merged {
        let version = match item.version {
            Some(version) => version,
            None => {
                let url = url::Url::parse(&item.url).map_err(|err| ReleasesError::Url {
                    url: item.url.clone(),
                    reason: err.to_string(),
                })?;
                reader.count(&url)?;
                let modified = source_http::last_modified(reader.policy.clone(), &item.url)
                    .await
                    .map_err(|err| ReleasesError::Unavailable(err.message))?;
                match modified {
                    Some(at) => version_from_modified(at),
                    None => return Err(ReleasesError::VersionUnknown { url: item.url }),
                }
            }
        };
        published.releases.push(Release {
            version,
            source: ImageSource {
                url: item.url,
                hash: Some(item.hash),
                ..ImageSource::default()
            },
        });
    }
    Ok(published)
}

/// A few names of an index, for a message.
fn describe(listed: &[Listed]) -> String {
    let names: Vec<String> = listed
        .iter()
        .take(8)
        .map(|l| format!("{}{}", l.name, if l.folder { "/" } else { "" }))
        .collect();
    if names.is_empty() {
        "nothing glint could read as a directory index".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
