//! Every word glint writes as a Condition reason or an Event reason, in one place.
//!
//! Users match on these words (`kubectl wait`, alerts, the `glint_images` gauge, docs/operations.md's
//! troubleshooting table), so they are part of glint's interface: a word never changes once
//! shipped. Code passes [`Reason`] around and turns it into a string only where it leaves
//! glint (a Condition, an Event, a metrics label, the CLI's report), so a typo cannot become
//! a new word and every word has one documented meaning.
//!
//! A leaf: this module imports nothing from the crate, so any module can use it.

use std::fmt;

/// How a reason is used, which decides what documentation it owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonKind {
    /// Normal work, or a healthy state: nothing for the user to do.
    Progress,
    /// Something is wrong, or waits for the user; docs/operations.md's troubleshooting table says
    /// what to do about it.
    Problem,
    /// Only used as the reason of an Event that records something glint did.
    Event,
}

// The word is the variant's name (`stringify!`), so the enum and the wire words cannot drift
// apart, and each word is written once with its kind and meaning beside it.
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident => $kind:ident, )+) => {
        /// A Condition or Event reason; [`Reason::as_str`] is the word Kubernetes shows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )+
        }

        impl Reason {
            /// Every reason, in catalogue order.
            pub const ALL: &[Reason] = &[$(Reason::$variant),+];

            /// The PascalCase word written into Conditions and Events.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => stringify!($variant),)+
                }
            }

            /// How the reason is used: what documentation it owes.
            pub fn kind(self) -> ReasonKind {
                match self {
                    $(Reason::$variant => ReasonKind::$kind,)+
                }
            }
        }
    };
}

catalogue! {
    // Image: healthy states and work under way.
    /// The image matches the spec.
    Synced => Progress,
    /// The imported image (`managementPolicy: unmanaged`) was found and is reported.
    Observed => Progress,
    /// The object is being deleted.
    Deleting => Progress,
    /// Nothing is wrong: the reason of a False Reconciling or Stalled.
    Idle => Progress,
    /// The image is being created in Glance.
    Creating => Progress,
    /// The image was deleted outside glint, or Glance killed it, and is being created again.
    Recreating => Progress,
    /// No image matches `spec.import` yet; glint looks again every resync.
    WaitingForImport => Progress,
    /// Fields are being brought in line with the spec.
    Updating => Progress,
    /// The source is being copied into Glance, or what Glance stored is being checked.
    Transferring => Progress,
    /// Glance has the data and is saving or importing it.
    GlanceProcessing => Progress,

    // ImageSeries and SharedImage: healthy states.
    /// A current version carries the stable name and nothing is under way.
    Current => Progress,
    /// A version's data is on its way, or a rotation is under way.
    Rotating => Progress,
    /// Glance has this project's decision on the shared image.
    Decided => Progress,
    /// The image is not (or not yet) shared with this project; glint looks again, and the
    /// image's owner is the one who adds the project as a member.
    NotShared => Progress,

    // The reconcile itself.
    /// The object is being deleted, and glint cannot delete its Glance image: fix the Secret
    /// or cloud, or set `spec.onDelete: detach`.
    DeletionBlocked => Problem,
    /// glint was to delete an image (the object's, a version beyond keep, or a deleted
    /// series') that is still in use: Glance refused (an rbd store with clones of it). glint
    /// keeps it hidden, deactivates it when spec.whenInUse says so, and tries again later.
    InUse => Problem,
    /// glint failed in a way it did not foresee (a bug); the message says where. Please
    /// report it; any edit retries.
    InternalError => Problem,
    /// Glance reports a status this glint version does not know; glint changes nothing until
    /// it is a known one again.
    UnknownGlanceStatus => Problem,
    /// glint deactivated this image for bad data and will not touch it again: delete the
    /// Image and create it again.
    Quarantined => Problem,
    /// A Secret the spec names does not exist: create it.
    SecretNotFound => Problem,
    /// A Secret lacks the keys glint needs: fix it.
    InvalidSecret => Problem,
    /// The Kubernetes API failed; glint retries.
    KubernetesUnavailable => Problem,
    /// The object lacks something Kubernetes always sets (a namespace, a uid); recreate it.
    InvalidObject => Problem,
    /// The HTTP client for sources could not be built (its TLS backend failed): check the
    /// controller's logs and its container.
    TransferSetupFailed => Problem,

    // Credentials and Keystone.
    /// clouds.yaml, a value in it, or its TLS settings cannot work: fix the Secret.
    InvalidCloudConfig => Problem,
    /// The cloud named in the spec is not in clouds.yaml (or there is no clouds.yaml).
    CloudNotFound => Problem,
    /// Keystone (or Glance) refused the credentials: fix them.
    AuthenticationFailed => Problem,
    /// The service catalog has no image endpoint for the interface and region asked for.
    ImageEndpointNotFound => Problem,
    /// Keystone answered an error, could not be reached, or answered nonsense; glint retries.
    KeystoneUnavailable => Problem,

    // Glance's answers.
    /// Glance answered 400 to a request: the message is Glance's own.
    GlanceBadRequest => Problem,
    /// Glance answered 403: the credentials may not do this to the image.
    GlanceForbidden => Problem,
    /// Glance answered 404 to a request that needed the image.
    GlanceNotFound => Problem,
    /// Glance answered 409: the image is in a state that does not allow the request.
    GlanceConflict => Problem,
    /// Glance answered 413: the project's image quota is used up (a quota threshold, Glance's
    /// storage quota or Keystone's unified limits); glint retries every few minutes.
    GlanceQuotaExceeded => Problem,
    /// Glance answered 413 because its store is full; glint retries every few minutes.
    GlanceStorageFull => Problem,
    /// Glance answered 413 because the image is larger than the cloud takes (its
    /// image_size_cap); waits for a change of spec or of the cloud.
    ImageTooLarge => Problem,
    /// Glance answered 415: it does not take this kind of request body.
    GlanceUnsupportedMediaType => Problem,
    /// Glance answered 5xx; glint retries.
    GlanceUnavailable => Problem,
    /// Glance answered another 4xx: the message is Glance's own.
    GlanceRequestFailed => Problem,
    /// Glance could not be reached (refused, reset, timed out); glint retries.
    GlanceUnreachable => Problem,
    /// The data to upload to Glance could not be read; glint retries.
    SourceUnreadable => Problem,
    /// The endpoint is not a Glance v2 API glint can read.
    GlanceIncompatible => Problem,
    /// More than one image has the name where one was expected: use the image id.
    AmbiguousImageName => Problem,

    // Acting on and observing the image.
    /// The cloud's property protections do not let these credentials write a property.
    PropertyProtected => Problem,
    /// `spec.id` is taken by another image or a deleted one: choose another.
    ImageIdTaken => Problem,
    /// Every id glint derives for the object is held by a deleted image: give the object a new
    /// identity, or purge deleted images.
    ImageIdsExhausted => Problem,
    /// The import filter matches more than one image: narrow it, or set `newest: true`.
    ImportAmbiguous => Problem,
    /// No image has the id `spec.import.id` names.
    ImportNotFound => Problem,

    // Transfers.
    /// The source URL points at an address the source policy refuses.
    SourceNotAllowed => Problem,
    /// The source could not be read (network error, error status, stalled, cut short).
    SourceUnavailable => Problem,
    /// A server's TLS certificate (Keystone's, Glance's or the source's) is not signed by a CA
    /// glint trusts, or does not name the server: trust its CA, or fix the URL.
    CertificateUntrusted => Problem,
    /// The data does not have the hash `spec.source.hash` names, or Glance stored other bytes
    /// than glint sent.
    HashMismatch => Problem,
    /// The archive is corrupt or truncated.
    CorruptArchive => Problem,
    /// Glance's import (glanceDirect, webDownload) failed; the message is Glance's task's.
    ImportFailed => Problem,
    /// Glance refused the data (for example: it does not match `diskFormat`).
    GlanceRejectedData => Problem,
    /// Glance converted data it fetched itself (webDownload), so nobody can check it against
    /// `spec.source.hash`.
    HashUnverifiable => Problem,
    /// The source is not the format `spec.diskFormat` names (checked before a conversion).
    FormatMismatch => Problem,
    /// glint refused to convert the source: a backing or data file, a multi-file VMDK, or an
    /// image hidden inside another.
    UnsafeImage => Problem,
    /// The conversion would need more scratch space than the limit allows.
    ScratchLimitExceeded => Problem,
    /// qemu-img is missing or failed.
    ConversionFailed => Problem,
    /// `spec.source.conversion` is glance, but Glance's import did not store `convertTo`.
    ConversionNotDone => Problem,
    /// Anything else between glint and Glance during a transfer.
    TransferFailed => Problem,

    // ImageSeries.
    /// No kept release has a usable image, and none is on its way.
    NoUsableRelease => Problem,
    /// `spec.schedule.cron` is not a cron expression glint can use.
    InvalidSchedule => Problem,
    /// The checksums file could not be fetched; the current version stays and glint tries
    /// again.
    ChecksumsUnavailable => Problem,
    /// The checksums file is in no format glint reads.
    ChecksumFormatUnknown => Problem,
    /// The checksums file `spec.source.hashFrom` names has no line for the source's file.
    HashNotPublished => Problem,
    /// `spec.checksums.pattern` is not a regular expression glint can use.
    InvalidPattern => Problem,
    /// No file in the checksums file matches `spec.checksums.pattern`.
    NoMatchingRelease => Problem,
    /// `spec.checksums.url` (or the URL a release resolves to) is not a URL.
    InvalidChecksumsUrl => Problem,
    /// A release's file name carries no version and the mirror does not say when it last
    /// changed (no Last-Modified), so glint cannot tell one build from the next.
    ReleaseVersionUnknown => Problem,
    /// A kept release newer than the current version failed its checks or could not be
    /// fetched; the current version stays, and glint tries again.
    ReleaseFailed => Problem,
    /// `spec.checksums.signature` asks for a signature and the mirror publishes none where it
    /// says (no detached file, or a checksums file that is not clear-signed).
    SignatureMissing => Problem,
    /// The signature file is not OpenPGP glint can read.
    SignatureMalformed => Problem,
    /// The checksums file was signed by a key the series does not trust.
    SignatureUnknownKey => Problem,
    /// The checksums file does not match its signature: it was changed after signing.
    SignatureBad => Problem,
    /// The key that signed the checksums file had expired (or was revoked).
    SignatureKeyExpired => Problem,
    /// The signature itself had expired.
    SignatureExpired => Problem,
    /// The ConfigMap or Secret named in `spec.checksums.signature.keys` does not exist, or
    /// lacks the key it names.
    TrustedKeysNotFound => Problem,
    /// The trusted keys are not OpenPGP public keys glint can read.
    TrustedKeysInvalid => Problem,

    // SharedImage.
    /// More than one image shared with this project has that name: set `spec.image.owner`
    /// or use `spec.image.id`.
    AmbiguousSharedImage => Problem,
    /// The credentials are scoped to no project, so there is no member to decide for.
    CredentialsWithoutProject => Problem,

    // Events: what glint did.
    /// glint created the Glance image.
    Created => Event,
    /// An earlier create of this object had landed; glint adopted its image.
    Adopted => Event,
    /// glint changed fields of the image in Glance.
    Updated => Event,
    /// glint shared the image with a project.
    Shared => Event,
    /// glint stopped sharing the image with a project.
    Unshared => Event,
    /// glint deactivated the image.
    Deactivated => Event,
    /// glint reactivated the image.
    Reactivated => Event,
    /// glint started copying the source into Glance.
    Uploading => Event,
    /// A transfer attempt succeeded.
    Uploaded => Event,
    /// glint deleted a Glance image (of an Image, or an ImageSeries' old version).
    Deleted => Event,
    /// The image had been deleted outside glint and was created again.
    Recreated => Event,
    /// The object was deleted and its image left in Glance (`onDelete: detach`).
    Detached => Event,
    /// An ImageSeries found a new release and created its image.
    NewVersion => Event,
    /// An ImageSeries made a version current.
    Promoted => Event,
    /// An ImageSeries retired its previous current version.
    Retired => Event,
    /// A SharedImage accepted the image for its project.
    Accepted => Event,
    /// A SharedImage rejected the image for its project.
    Rejected => Event,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_word_is_unique_and_pascal_case() {
        let mut seen = BTreeSet::new();
        for reason in Reason::ALL {
            let word = reason.as_str();
            assert!(seen.insert(word), "{word} is in the catalogue twice");
            let mut chars = word.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_uppercase())
                    && chars.all(|c| c.is_ascii_alphanumeric()),
                "{word} is not PascalCase"
            );
        }
    }

    #[test]
    fn display_writes_the_wire_word() {
        assert_eq!(Reason::HashMismatch.to_string(), "HashMismatch");
        assert_eq!(Reason::WaitingForImport.to_string(), "WaitingForImport");
    }

    /// The reason words in backticks in the first cell of each row of the table under
    /// "## When something is wrong" in docs/operations.md.
    fn troubleshooting_words(readme: &str) -> BTreeSet<&str> {
        readme
            .lines()
            .skip_while(|line| line.trim() != "## When something is wrong")
            .skip(1)
            .take_while(|line| !line.starts_with('#'))
            .filter_map(|line| line.strip_prefix('|')?.split('|').next())
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .collect()
    }

    /// What is wrong with the table: words it names that are no reason, and problems it
    /// does not explain.
    fn table_mismatches(readme: &str) -> (Vec<&str>, Vec<&'static str>) {
        let documented = troubleshooting_words(readme);
        let known: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        let unknown = documented.difference(&known).copied().collect();
        let undocumented = Reason::ALL
            .iter()
            .filter(|r| r.kind() == ReasonKind::Problem && !documented.contains(r.as_str()))
            .map(|r| r.as_str())
            .collect();
        (unknown, undocumented)
    }

    #[test]
    fn the_troubleshooting_table_explains_every_problem_and_names_only_reasons() {
        let (unknown, undocumented) = table_mismatches(include_str!("../docs/operations.md"));
        assert!(
            unknown.is_empty(),
            "docs/operations.md's troubleshooting table names words that are no Reason: {unknown:?}"
        );
        assert!(
            undocumented.is_empty(),
            "these problem reasons have no row in docs/operations.md's table under \"## When something is wrong\": {undocumented:?}"
        );
    }

    #[test]
    fn the_table_check_notices_a_missing_row_and_an_unknown_word() {
        let readme = "## When something is wrong\n\n| reason | what to do |\n|---|---|\n| `HashMismatch`, `NoSuchWord` | fix it |\n\n### Next\n| `Quarantined` | not in the table |\n";
        let (unknown, undocumented) = table_mismatches(readme);
        assert_eq!(unknown, ["NoSuchWord"]);
        assert!(undocumented.contains(&"Quarantined"));
        assert!(!undocumented.contains(&"HashMismatch"));
    }

    /// Renaming a variant renames its word, which users' alerts and scripts match on: every
    /// word glint has shipped must stay.
    #[test]
    fn no_shipped_word_is_renamed_or_dropped() {
        let shipped = [
            "Synced",
            "Observed",
            "Deleting",
            "Idle",
            "Creating",
            "Recreating",
            "WaitingForImport",
            "Updating",
            "Transferring",
            "GlanceProcessing",
            "Current",
            "Rotating",
            "Decided",
            "NotShared",
            "DeletionBlocked",
            "InternalError",
            "UnknownGlanceStatus",
            "Quarantined",
            "SecretNotFound",
            "InvalidSecret",
            "KubernetesUnavailable",
            "InvalidObject",
            "TransferSetupFailed",
            "InvalidCloudConfig",
            "CloudNotFound",
            "AuthenticationFailed",
            "ImageEndpointNotFound",
            "KeystoneUnavailable",
            "GlanceBadRequest",
            "GlanceForbidden",
            "GlanceNotFound",
            "GlanceConflict",
            "GlanceQuotaExceeded",
            "GlanceUnsupportedMediaType",
            "GlanceUnavailable",
            "GlanceRequestFailed",
            "GlanceUnreachable",
            "SourceUnreadable",
            "GlanceIncompatible",
            "AmbiguousImageName",
            "PropertyProtected",
            "ImageIdTaken",
            "ImageIdsExhausted",
            "ImportAmbiguous",
            "ImportNotFound",
            "SourceNotAllowed",
            "SourceUnavailable",
            "CertificateUntrusted",
            "HashMismatch",
            "CorruptArchive",
            "ImportFailed",
            "GlanceRejectedData",
            "HashUnverifiable",
            "FormatMismatch",
            "UnsafeImage",
            "ScratchLimitExceeded",
            "ConversionFailed",
            "ConversionNotDone",
            "TransferFailed",
            "NoUsableRelease",
            "InvalidSchedule",
            "ChecksumsUnavailable",
            "ChecksumFormatUnknown",
            "InvalidPattern",
            "NoMatchingRelease",
            "InvalidChecksumsUrl",
            "AmbiguousSharedImage",
            "CredentialsWithoutProject",
            "Created",
            "Adopted",
            "Updated",
            "Shared",
            "Unshared",
            "Deactivated",
            "Reactivated",
            "Uploading",
            "Uploaded",
            "Deleted",
            "Recreated",
            "Detached",
            "NewVersion",
            "Promoted",
            "Retired",
            "Accepted",
            "Rejected",
        ];
        let words: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        let gone: Vec<&str> = shipped.into_iter().filter(|w| !words.contains(w)).collect();
        assert!(
            gone.is_empty(),
            "words users may match on are gone: {gone:?}"
        );
    }

    #[test]
    fn every_kind_has_reasons() {
        for kind in [ReasonKind::Progress, ReasonKind::Problem, ReasonKind::Event] {
            assert!(Reason::ALL.iter().any(|r| r.kind() == kind), "{kind:?}");
        }
    }
}
