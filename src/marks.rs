//! Every name glint writes under `glint.dev/` outside its own API: the properties it puts on
//! Glance images and the annotations and finalizer it puts on Kubernetes objects. Users and
//! other tools match on these words, and glint finds its own images by them after a restart,
//! so each is spelt here once and never changes.
//!
//! The modules that use a mark re-export it where its meaning belongs (the CRD, the pass,
//! the series' plan, transfers, plan/apply), so code reads `series::plan::LATEST_PROPERTY`.

// Glance image properties.

/// Ties a Glance image to the Kubernetes object that manages it: the object's uid. The Image
/// pass finds a lost create by it, and a series its versions.
pub const OWNER_PROPERTY: &str = "glint.dev/uid";

/// The keys glint set on the image (a JSON list of strings), so that a key dropped from the
/// spec can be removed and no other key ever is.
pub const PROPERTIES_RECORD: &str = "glint.dev/properties";

/// Set on an image glint deactivated because its data failed a check (the reason and what
/// failed), before it deactivates it. It outlives the transfer's state in memory, so no later
/// pass (after a restart, or a second `glint apply`) reactivates the wrong bytes: the plan
/// leaves a marked image alone until the Image is recreated.
pub const QUARANTINE_PROPERTY: &str = "glint.dev/quarantined";

/// Set on an image glint was to delete and Glance refused because the image is still in use:
/// Glance's words. `openstack image show` then says why the image is still there, a series
/// lists the version as deleting, and a pass that finds the image wanted again removes it.
pub const IN_USE_PROPERTY: &str = "glint.dev/in-use";

/// The series a version belongs to (`namespace/name`).
pub const SERIES_PROPERTY: &str = "glint.dev/series";

/// A series version's version.
pub const VERSION_PROPERTY: &str = "glint.dev/version";

/// Carried by the current version of a series only.
pub const LATEST_PROPERTY: &str = "glint.dev/latest";

/// The digest the mirror listed for the bytes a version's image was made from
/// (`ALGORITHM:HEX`): how glint tells a rebuilt release from the build it holds.
pub const RELEASE_DIGEST_PROPERTY: &str = "glint.dev/release-digest";

/// The manifest (`namespace/name`) `glint apply -f` made an image from, which `--prune`
/// recognises later.
pub const APPLIED_AS_PROPERTY: &str = "glint.dev/applied-as";

// Kubernetes annotations and finalizer.

/// Keeps an object until its Glance images are dealt with.
pub const FINALIZER: &str = "glint.dev/cleanup";

/// Set to any new value (for example the current time) to make glint read the image from
/// Glance right away, bypassing the shared listing (a series also checks its mirror).
pub const REFRESH_ANNOTATION: &str = "glint.dev/reconcile-requested-at";

/// Asks glint to try failed (quarantined) versions of a series again: any new value does,
/// for example `kubectl annotate imageseries NAME glint.dev/retry="$(date +%s)" --overwrite`.
pub const RETRY_ANNOTATION: &str = "glint.dev/retry";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mark_is_distinct_and_under_glint_dev() {
        let all = [
            OWNER_PROPERTY,
            PROPERTIES_RECORD,
            QUARANTINE_PROPERTY,
            SERIES_PROPERTY,
            VERSION_PROPERTY,
            LATEST_PROPERTY,
            RELEASE_DIGEST_PROPERTY,
            APPLIED_AS_PROPERTY,
            FINALIZER,
            REFRESH_ANNOTATION,
            RETRY_ANNOTATION,
        ];
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().all(|mark| mark.starts_with("glint.dev/")));
    }
}
