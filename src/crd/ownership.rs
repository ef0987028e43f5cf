//! `spec.propertyOwnership`: which of an image's properties glint may remove besides the ones it
//! set itself. Glance's import plugins, its property protections and other tools put
//! properties on images too; glint leaves those alone unless the user says otherwise here.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A pattern is a whole key, or a prefix followed by one `*` at the end; `*` alone matches
/// every key.
const PATTERN_RULE: &str = "self.all(p, p.matches('^[^*]*[*]?$'))";
const PATTERN_MESSAGE: &str = "each entry is a property key, or a prefix ending in a single * (for example hw_*); * may appear only at the end";

/// Which properties outside spec.properties glint manages. By default glint removes only
/// properties it set itself (it records their keys in the image's glint.dev/properties
/// property) and leaves every other property alone: ones Glance's import plugins add, ones
/// the cloud's operators or other tools set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOwnership {
    /// Properties glint removes whenever spec.properties does not list them, even ones glint
    /// did not set: whole keys, or prefixes ending in * (hw_*). ["*"] makes glint own every
    /// property, so the image has exactly spec.properties (Glance's own os_glance_* keys
    /// excepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Bounded, or the apiserver refuses the rules as too costly.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64, "items" = {"type": "string", "maxLength": 255}))]
    #[x_kube(validation = Rule::new(PATTERN_RULE).message(PATTERN_MESSAGE))]
    #[x_kube(validation = Rule::new("self.all(p, size(p) > 0)").message("each entry is 1 to 255 characters"))]
    pub own: Vec<String>,

    /// Properties glint never removes, even ones it set earlier or that own claims: whole
    /// keys, or prefixes ending in * (site_*). Use it to hand a property over to another tool:
    /// take it out of spec.properties and list it here, and glint stops managing it without
    /// removing it. Keys that spec.properties lists are still set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64, "items" = {"type": "string", "maxLength": 255}))]
    #[x_kube(validation = Rule::new(PATTERN_RULE).message(PATTERN_MESSAGE))]
    #[x_kube(validation = Rule::new("self.all(p, size(p) > 0)").message("each entry is 1 to 255 characters"))]
    pub ignore: Vec<String>,
}

impl PropertyOwnership {
    /// Whether `own` claims this key.
    pub fn owns(&self, key: &str) -> bool {
        self.own.iter().any(|pattern| matches_key(pattern, key))
    }

    /// Whether `ignore` hands this key to someone else.
    pub fn ignores(&self, key: &str) -> bool {
        self.ignore.iter().any(|pattern| matches_key(pattern, key))
    }
}

/// The pattern notation of `own` and `ignore`: a whole key, or a prefix and a final `*`.
pub fn matches_key(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_its_whole_key_or_everything_after_its_prefix() {
        let table = [
            ("os_distro", "os_distro", true),
            ("os_distro", "os_distro_2", false),
            ("os_distro", "os_dist", false),
            ("hw_*", "hw_disk_bus", true),
            ("hw_*", "hw_", true),
            ("hw_*", "xhw_disk_bus", false),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, key, expected) in table {
            assert_eq!(matches_key(pattern, key), expected, "{pattern:?} ~ {key:?}");
        }
    }

    #[test]
    fn own_and_ignore_each_answer_for_their_own_list() {
        let ownership = PropertyOwnership {
            own: vec!["legacy_*".into()],
            ignore: vec!["site".into()],
        };
        assert!(ownership.owns("legacy_flag"));
        assert!(!ownership.owns("site"));
        assert!(ownership.ignores("site"));
        assert!(!ownership.ignores("legacy_flag"));
        assert!(!PropertyOwnership::default().owns("x"));
    }
}
