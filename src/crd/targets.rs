//! The spec each of an Image's destinations is reconciled against: its one cloud, or each of
//! its `spec.targets` with what the target overrides applied.

use super::cloud::CloudCredentialsRef;
use super::series::{ImageSeriesSpec, SeriesTargetStatus};
use super::spec::{ImageSpec, Target};
use super::status_fields::TargetStatus;

/// Where one target's images are: its name, its Secret and cloud, its region override. A
/// target in spec and the status entry a target leaves behind both say it.
pub type TargetPlace<'a> = (&'a str, &'a CloudCredentialsRef, Option<&'a str>);

impl Target {
    pub fn place(&self) -> TargetPlace<'_> {
        (
            &self.name,
            &self.cloud_credentials_ref,
            self.region.as_deref(),
        )
    }
}

impl TargetStatus {
    pub fn place(&self) -> TargetPlace<'_> {
        (
            &self.name,
            &self.cloud_credentials_ref,
            self.region.as_deref(),
        )
    }
}

impl SeriesTargetStatus {
    pub fn place(&self) -> TargetPlace<'_> {
        (
            &self.name,
            &self.cloud_credentials_ref,
            self.region.as_deref(),
        )
    }
}

/// Which cloud a spec is reconciled against: the object's one cloud, or one of its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// spec.cloudCredentialsRef: the object itself, as before targets existed.
    Single,
    /// spec.targets[name].
    Target(String),
}

impl Destination {
    /// The part of an image's identity that tells its targets apart (none for a single cloud,
    /// so that objects made before targets keep their images).
    pub fn identity_suffix(&self) -> Option<&str> {
        match self {
            Self::Single => None,
            Self::Target(name) => Some(name),
        }
    }
}

impl ImageSpec {
    /// The Secrets whose clouds.yaml this spec logs in with (one per target).
    pub fn cloud_secret_names(&self) -> impl Iterator<Item = &str> {
        self.cloud_credentials_ref
            .iter()
            .chain(
                self.targets
                    .iter()
                    .map(|target| &target.cloud_credentials_ref),
            )
            .map(|reference| reference.secret_name.as_str())
    }

    /// The spec each destination is reconciled against, with what the target overrides applied
    /// and spec.targets cleared; the object's own spec alone when it names one cloud.
    pub fn per_destination(&self) -> Vec<(Destination, ImageSpec)> {
        if self.targets.is_empty() {
            return vec![(Destination::Single, self.clone())];
        }
        self.targets
            .iter()
            .map(|target| {
                (
                    Destination::Target(target.name.clone()),
                    self.for_target(target),
                )
            })
            .collect()
    }

    fn for_target(&self, target: &Target) -> ImageSpec {
        let mut spec = ImageSpec {
            cloud_credentials_ref: Some(target.cloud_credentials_ref.clone()),
            targets: Vec::new(),
            ..self.clone()
        };
        if let Some(visibility) = target.visibility {
            spec.visibility = Some(visibility);
        }
        if let Some(members) = &target.members {
            spec.members = members.clone();
        }
        if let (Some(convert_to), Some(source)) = (target.convert_to, spec.source.as_mut()) {
            source.options.convert_to = Some(convert_to);
        }
        spec
    }
}

impl ImageSeriesSpec {
    /// The series as one target's cloud keeps it: that target's cloud, what it overrides
    /// applied over spec.image, and spec.targets cleared, so that each target rotates exactly
    /// as a one-cloud series does.
    pub fn for_target(&self, target: &Target) -> ImageSeriesSpec {
        let mut spec = ImageSeriesSpec {
            cloud_credentials_ref: Some(target.cloud_credentials_ref.clone()),
            targets: Vec::new(),
            ..self.clone()
        };
        if let Some(visibility) = target.visibility {
            spec.image.visibility = Some(visibility);
        }
        if let Some(members) = &target.members {
            spec.image.members = members.clone();
        }
        if let Some(convert_to) = target.convert_to {
            spec.image.source.convert_to = Some(convert_to);
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CloudCredentialsRef, ConvertTo, Visibility};

    fn reference(cloud: &str) -> CloudCredentialsRef {
        CloudCredentialsRef {
            secret_name: "clouds".to_string(),
            cloud_name: cloud.to_string(),
        }
    }

    fn spec_with(targets: Vec<Target>) -> ImageSpec {
        serde_json::from_value::<ImageSpec>(serde_json::json!({
            "diskFormat": "qcow2",
            "visibility": "private",
            "members": [],
            "source": {"url": "https://mirror.example/disk.qcow2", "convertTo": "qcow2"},
        }))
        .map(|spec| ImageSpec { targets, ..spec })
        .expect("a spec")
    }

    #[test]
    fn an_object_with_one_cloud_is_reconciled_as_it_is() {
        let spec = ImageSpec {
            cloud_credentials_ref: Some(reference("one")),
            ..spec_with(Vec::new())
        };
        assert_eq!(
            spec.per_destination(),
            vec![(Destination::Single, spec.clone())]
        );
    }

    #[test]
    fn each_target_gets_its_cloud_and_overrides_and_the_rest_of_the_spec() {
        let targets = vec![
            Target {
                name: "ceph".to_string(),
                cloud_credentials_ref: reference("a"),
                convert_to: Some(ConvertTo::Raw),
                ..Target::default()
            },
            Target {
                name: "partner".to_string(),
                cloud_credentials_ref: reference("b"),
                visibility: Some(Visibility::Shared),
                members: Some(vec!["p1".to_string()]),
                ..Target::default()
            },
        ];
        let views = spec_with(targets).per_destination();
        let (ceph, partner) = (&views[0], &views[1]);

        assert_eq!(ceph.0, Destination::Target("ceph".to_string()));
        assert_eq!(ceph.1.cloud_credentials_ref, Some(reference("a")));
        let source = ceph.1.source.as_ref().expect("source");
        assert_eq!(source.options.convert_to, Some(ConvertTo::Raw));
        assert_eq!(ceph.1.visibility, Some(Visibility::Private));
        assert!(ceph.1.targets.is_empty());

        assert_eq!(partner.1.cloud_credentials_ref, Some(reference("b")));
        let source = partner.1.source.as_ref().expect("source");
        assert_eq!(
            source.options.convert_to,
            Some(ConvertTo::Qcow2),
            "not overridden"
        );
        assert_eq!(partner.1.visibility, Some(Visibility::Shared));
        assert_eq!(partner.1.members, vec!["p1".to_string()]);
    }

    #[test]
    fn a_series_target_rotates_as_a_one_cloud_series_with_its_overrides() {
        let series: ImageSeriesSpec = serde_json::from_value(serde_json::json!({
            "image": {"diskFormat": "qcow2", "visibility": "private", "tags": ["t"], "convertTo": "qcow2"},
            "versions": [{"version": "1", "url": "https://mirror.example/1.qcow2"}],
        }))
        .expect("a series");
        let ceph = Target {
            name: "ceph".to_string(),
            cloud_credentials_ref: reference("a"),
            convert_to: Some(ConvertTo::Raw),
            visibility: Some(Visibility::Shared),
            members: Some(vec!["p1".to_string()]),
            ..Target::default()
        };
        let view = ImageSeriesSpec {
            targets: vec![ceph.clone()],
            ..series.clone()
        }
        .for_target(&ceph);

        assert_eq!(view.cloud_credentials_ref, Some(reference("a")));
        assert!(view.targets.is_empty());
        let version = view.version_spec("n", None);
        assert_eq!(version.cloud_credentials_ref, Some(reference("a")));
        assert_eq!(version.visibility, Some(Visibility::Shared));
        assert_eq!(version.members, vec!["p1".to_string()]);
        assert_eq!(view.image.source.convert_to, Some(ConvertTo::Raw));
        assert_eq!(view.image.tags, series.image.tags, "the rest as it was");

        let plain = Target {
            name: "plain".to_string(),
            cloud_credentials_ref: reference("b"),
            ..Target::default()
        };
        let view = series.for_target(&plain);
        assert_eq!(view.image.visibility, Some(Visibility::Private));
        assert_eq!(view.image.source.convert_to, Some(ConvertTo::Qcow2));
    }

    #[test]
    fn only_targets_add_to_an_images_identity() {
        assert_eq!(Destination::Single.identity_suffix(), None);
        assert_eq!(
            Destination::Target("eu".to_string()).identity_suffix(),
            Some("eu")
        );
    }
}
