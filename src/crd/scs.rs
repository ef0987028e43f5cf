//! The Sovereign Cloud Stack image metadata (standard SCS-0102) a series stamps on its
//! versions. Every field's doc comment is what `kubectl explain` shows.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Stamp the properties of Sovereign Cloud Stack's image metadata standard (SCS-0102) on every
/// version. glint sets image_source (the release's URL), image_build_date (the date in the
/// release's version: Ubuntu's serials, Debian's, AlmaLinux' and CentOS Stream's builds, a
/// current/ file's Last-Modified), uuid_validity (last-N, N the replaced versions spec.keep
/// holds; none with keep 1 or retired: deactivated) and replace_frequency (from
/// spec.schedule, unless set here); the rest come from here. The technical properties the
/// standard also asks for (architecture, os_distro, os_version, hw_disk_bus in
/// spec.image.properties; spec.image.minDiskGB and minRamMB) are the spec's to give:
/// `glint plan` names what is missing or wrong before anything is published.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScsMetadata {
    /// image_original_user: the user a server booted from the image lets you log in as
    /// (ubuntu, debian, fedora, almalinux, cloud-user, ...), or none.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 255").message("originalUser is 1 to 255 characters: the login user, or none"))]
    pub original_user: String,
    /// image_description: a URL of the image's release notes, or a text. Defaults to
    /// spec.checksums.url (or, for releases listed by hand, the release's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 255").message("description is 1 to 255 characters (Glance's limit for a property)"))]
    pub description: Option<String>,
    /// replace_frequency: the least often a new version replaces the current one: yearly,
    /// quarterly, monthly, weekly, daily, critical_bug or never. Defaults from
    /// spec.schedule.every (a check at most a day apart: daily; a week: weekly; 31 days:
    /// monthly; 92 days: quarterly; else yearly); with spec.schedule.cron, set it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_frequency: Option<ReplaceFrequency>,
    /// provided_until: until when an image is kept and updated under this name: a date
    /// (YYYY-MM-DD), none (no promise; the default) or notice (until a notice says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == 'none' || self == 'notice' || self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}$')").message("providedUntil is a date (YYYY-MM-DD), none or notice"))]
    pub provided_until: Option<String>,
    /// hotfix_hours: within how many hours of a published fix for a critical flaw (CVSS 9 or
    /// more) a new version appears; 0 means best effort. Unset: no promise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotfix_hours: Option<u32>,
}

spec_enum!(
    /// SCS-0102's replace_frequency vocabulary.
    ReplaceFrequency {
        Yearly = "yearly",
        Quarterly = "quarterly",
        Monthly = "monthly",
        Weekly = "weekly",
        Daily = "daily",
        CriticalBug = "critical_bug",
        Never = "never"
    } default Monthly
);
