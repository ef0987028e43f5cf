//! Glance's words: image statuses, visibilities, disk and container formats, member
//! statuses, and which keys of an image document are Glance's own. The client
//! ([`crate::glance`]), the CRD's checks ([`crate::crd`]) and the embedded cloud
//! ([`crate::glance_server`]) all take them from here, so a new word is one edit. Nothing here
//! imports the rest of the crate.

use serde::{Deserialize, Serialize};

/// An enum of Glance's words that survives words it does not know: deployments configure
/// their own disk formats and newer Glances add statuses, and one such image must not break
/// a whole listing. `Other` keeps the word as Glance sent it, so it round-trips unchanged.
macro_rules! glance_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// A word this version of glint does not know, exactly as Glance sent it.
            Other(String),
        }

        impl $name {
            /// Every word this version knows.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The word Glance uses on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }

            /// Whether this is a word glint knows (not [`Self::Other`]).
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Other(text),
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::from(text.to_string())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Never fails: an unknown word becomes [`Self::Other`] and Glance judges it.
        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(text))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            // Glance's word as it is: status reports what Glance said, known or not.
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }
    };
}

// Each closed list of Glance's words is a macro that hands its `Variant = "word"` pairs to
// another macro: `disk_formats!(make!(head...) tail...)` expands to
// `make!(head... { pairs } tail...)`. Glance's open enums below and the CRD's closed ones
// (`crd::spec`) are made from the same list, so a new word is one edit.

macro_rules! visibilities {
    ($make:ident ! ($($head:tt)*) $($tail:tt)*) => { $make!($($head)* {
        Public = "public", Community = "community", Shared = "shared", Private = "private",
    } $($tail)*); };
}

macro_rules! disk_formats {
    ($make:ident ! ($($head:tt)*) $($tail:tt)*) => { $make!($($head)* {
        Ami = "ami", Ari = "ari", Aki = "aki", Vhd = "vhd", Vhdx = "vhdx", Vmdk = "vmdk",
        Raw = "raw", Qcow2 = "qcow2", Vdi = "vdi", Ploop = "ploop", Iso = "iso",
    } $($tail)*); };
}

macro_rules! container_formats {
    ($make:ident ! ($($head:tt)*) $($tail:tt)*) => { $make!($($head)* {
        Ami = "ami", Ari = "ari", Aki = "aki", Bare = "bare", Ovf = "ovf", Ova = "ova",
        Docker = "docker", Compressed = "compressed",
    } $($tail)*); };
}

pub(crate) use {container_formats, disk_formats, visibilities};

visibilities!(glance_enum!(
    /// Who can see an image.
    Visibility
));

disk_formats!(glance_enum!(
    /// Format of the image's bits (Glance's default `disk_formats`).
    DiskFormat
));

container_formats!(glance_enum!(
    /// Wrapper around the image's bits (Glance's default `container_formats`).
    ContainerFormat
));

glance_enum!(
    /// Glance's image lifecycle states.
    GlanceStatus {
        Queued = "queued",
        Saving = "saving",
        Uploading = "uploading",
        Importing = "importing",
        Active = "active",
        Deactivated = "deactivated",
        Killed = "killed",
        Deleted = "deleted",
        PendingDelete = "pending_delete",
    }
);

glance_enum!(
    /// A member project's answer to a shared image.
    MemberStatus { Pending = "pending", Accepted = "accepted", Rejected = "rejected", All = "all" }
);

/// Keys of an image document that are Glance's own, not free-form properties: the
/// [`SETTABLE_KEYS`] and the ones Glance computes.
pub const BASE_KEYS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "locations",
    "direct_url",
    "stores",
];

/// The [`BASE_KEYS`] a create or a JSON patch may set, each with a type of its own.
pub const SETTABLE_KEYS: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "tags",
    "disk_format",
    "container_format",
    "min_ram",
    "min_disk",
];

/// Whether Glance computes `key` itself: a create or patch that names it is refused (403).
pub fn is_read_only_key(key: &str) -> bool {
    BASE_KEYS.contains(&key) && !SETTABLE_KEYS.contains(&key)
}

/// Properties whose key starts with this are Glance's own (import workflow state); Glance
/// refuses to let a user set them.
pub const RESERVED_PREFIX: &str = "os_glance";

/// Glance ids are UUIDs; anything else can only be a name.
pub fn looks_like_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|group| group.chars().all(|ch| ch.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enum_words_round_trip_known_or_not() {
        for format in [DiskFormat::Qcow2, DiskFormat::Raw, DiskFormat::Iso] {
            assert_eq!(DiskFormat::from(format.as_str()), format);
        }
        assert_eq!(ContainerFormat::Compressed.as_str(), "compressed");
        let odd = DiskFormat::from("ploop2");
        assert_eq!(odd, DiskFormat::Other("ploop2".into()));
        assert!(!odd.is_known());
        assert_eq!(serde_json::to_value(&odd).unwrap(), json!("ploop2"));
    }

    #[test]
    fn every_settable_key_is_a_base_key_and_not_read_only() {
        for key in SETTABLE_KEYS {
            assert!(BASE_KEYS.contains(key), "{key}");
            assert!(!is_read_only_key(key), "{key}");
        }
        assert!(is_read_only_key("checksum"));
        assert!(
            !is_read_only_key("os_distro"),
            "a free-form property is not Glance's"
        );
    }

    #[test]
    fn only_uuid_shaped_text_is_taken_for_an_id() {
        assert!(looks_like_uuid("1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"));
        assert!(!looks_like_uuid("cirros-0.6"));
        assert!(!looks_like_uuid("1b4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7"));
        assert!(!looks_like_uuid("zb4b1d5e-0a6c-4b7e-9e0f-2a3b4c5d6e7f"));
    }
}
