//! `spec.source.hashFrom`: the source's hash, read from the distribution's checksums file when
//! a transfer starts (only a transfer uses the hash, so a Ready image costs the mirror
//! nothing). When a signature is asked for, nothing in the file is believed before it checks
//! out, and no byte of the image is fetched before that.

use std::sync::Arc;

use super::source_http::{self, FetchError};
use super::{SourcePolicy, TransferRequest};
use crate::checksums::signature::{self, SignatureError, Signed, TrustedKeys};
use crate::checksums::{self, signed};
use crate::crd::{HashFrom, SourceHash};
use crate::reason::Reason;

/// Why no hash could be believed, and whether another attempt may help (the transfer's
/// failure, in the job's terms).
#[derive(Debug)]
pub(super) struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub retry: bool,
}

impl Refusal {
    fn new(reason: Reason, message: impl Into<String>, retry: bool) -> Self {
        Self {
            reason,
            message: message.into(),
            retry,
        }
    }
}

/// Fills in `request`'s hash from its spec.source.hashFrom, if it has one.
pub(super) async fn resolve(
    request: &mut TransferRequest,
    policy: Arc<SourcePolicy>,
) -> Result<(), Refusal> {
    let Some(hash_from) = &request.source.hash_from else {
        return Ok(());
    };
    let source = url::Url::parse(&request.source.url).map_err(|err| {
        Refusal::new(
            Reason::SourceUnavailable,
            format!("spec.source.url is not a URL: {err}"),
            false,
        )
    })?;
    let keys = request.access.trusted_keys.as_deref();
    let hash = published_hash(&source, hash_from, policy, keys).await?;
    request.source.hash = Some(hash);
    Ok(())
}

/// The hash `hash_from` publishes for the file at `source`.
async fn published_hash(
    source: &url::Url,
    hash_from: &HashFrom,
    policy: Arc<SourcePolicy>,
    keys: Option<&TrustedKeys>,
) -> Result<SourceHash, Refusal> {
    let file = url::Url::parse(&hash_from.url).map_err(|err| {
        Refusal::new(
            Reason::InvalidChecksumsUrl,
            format!("spec.source.hashFrom.url is not a URL: {err}"),
            false,
        )
    })?;
    let text = source_http::fetch_text(policy.clone(), file.as_str(), signed::CHECKSUMS_LIMIT)
        .await
        .map_err(|err| unavailable(&file, "spec.source.hashFrom.url", err))?;
    let text = match &hash_from.signature {
        None => text,
        Some(asked) => {
            let keys = keys.ok_or_else(|| {
                Refusal::new(
                    Reason::TrustedKeysNotFound,
                    "spec.source.hashFrom.signature names trusted keys, but none were read",
                    true,
                )
            })?;
            let now = jiff::Timestamp::now();
            let verified = match &asked.detached {
                None => signature::verify(file.as_str(), Signed::ClearSigned(&text), keys, now),
                Some(detached) => {
                    let beside = signed::detached_url(&file, detached).map_err(|err| {
                        Refusal::new(
                            Reason::InvalidChecksumsUrl,
                            format!(
                                "spec.source.hashFrom.signature.detached {detached:?} must name a file beside {file}: {err}"
                            ),
                            false,
                        )
                    })?;
                    let bytes =
                        source_http::fetch_bytes(policy, beside.as_str(), signed::SIGNATURE_LIMIT)
                            .await
                            .map_err(|err| missing_signature(&file, &beside, err))?;
                    let published = Signed::Detached {
                        data: text.as_bytes(),
                        signature: &bytes,
                    };
                    signature::verify(file.as_str(), published, keys, now)
                }
            };
            verified.map_err(refused)?.text
        }
    };
    let entries = checksums::parse(&text).map_err(|err| {
        Refusal::new(
            Reason::ChecksumFormatUnknown,
            format!("{file} (spec.source.hashFrom.url): {err}"),
            false,
        )
    })?;
    let name = match &hash_from.file {
        Some(name) => name.clone(),
        None => signed::file_name(source).ok_or_else(|| {
            Refusal::new(
                Reason::HashNotPublished,
                format!(
                    "{source} ends in no file name to look up in {file}: set spec.source.hashFrom.file to the name it lists"
                ),
                false,
            )
        })?,
    };
    let line = signed::line_for(&entries, &name).ok_or_else(|| {
        let listed: Vec<&str> = entries
            .iter()
            .take(5)
            .map(|entry| entry.file.as_str())
            .collect();
        // A release's checksums file lists its files once published: no line is a wrong name.
        Refusal::new(
            Reason::HashNotPublished,
            format!(
                "{file} has no line for {name} (it lists {}{}); set spec.source.hashFrom.file to the name it lists for this image",
                listed.join(", "),
                if entries.len() > listed.len() { ", …" } else { "" }
            ),
            false,
        )
    })?;
    tracing::debug!(file = %file, name, algorithm = line.algorithm.as_str(), "hash read from the checksums file");
    Ok(SourceHash {
        algorithm: line.algorithm,
        value: line.digest.clone(),
    })
}

fn unavailable(document: &url::Url, what: &str, err: FetchError) -> Refusal {
    Refusal::new(
        Reason::ChecksumsUnavailable,
        format!(
            "cannot read {document} ({what}): {} (will retry)",
            err.message
        ),
        true,
    )
}

fn missing_signature(file: &url::Url, signature: &url::Url, err: FetchError) -> Refusal {
    if !err.missing {
        return unavailable(
            signature,
            "the signature spec.source.hashFrom.signature names",
            err,
        );
    }
    Refusal::new(
        Reason::SignatureMissing,
        format!(
            "{file} has no signature at {signature} ({}); the mirror may still be syncing, or spec.source.hashFrom.signature.detached names the wrong file (will retry)",
            err.message
        ),
        true,
    )
}

/// A signature that does not check out waits for the spec or the trusted keys to change
/// (the keys are read at every reconcile, and new ones restart the transfer).
fn refused(err: SignatureError) -> Refusal {
    Refusal::new(err.reason(), err.to_string(), false)
}
