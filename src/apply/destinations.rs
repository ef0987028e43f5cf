//! The clouds one `glint plan -f` / `glint apply -f` talks to. Manifests that name one cloud
//! go to the cloud chosen as the openstack CLI chooses it (`--os-cloud`, `OS_CLOUD`,
//! clouds.yaml); each target of an Image with spec.targets goes to the cloud its
//! `cloudCredentialsRef.cloudName` names in that same clouds.yaml (the Secret is the
//! controller's; here the file is the user's), its `region` over the cloud's region_name.
//! When the embedded cloud is the cloud (nothing configured, or `--data-dir`), it stands in
//! for every target: each target's image is still its own there.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::manifests::Document;
use super::target;
use crate::crd::Target;
use crate::glance::GlanceClient;
use crate::glance_server::RunningCloud;

/// Where a target's image goes: the cloud's name in clouds.yaml, and its region override.
pub type Place = (String, Option<String>);

/// The clients of one run, one per cloud (and region).
pub struct Destinations {
    /// The chosen cloud; none when every manifest has targets and no cloud was chosen.
    main: Option<Arc<GlanceClient>>,
    targets: BTreeMap<Place, Arc<GlanceClient>>,
    /// The embedded cloud, served while the run lasts.
    _embedded: Option<RunningCloud>,
}

/// Where a document goes: its target's place, or `None` for the chosen cloud.
pub fn place_of(target: Option<&Target>) -> Option<Place> {
    let target = target?;
    Some((
        target.cloud_credentials_ref.cloud_name.clone(),
        target.region.clone(),
    ))
}

impl Destinations {
    /// Connects to every cloud the documents need: the targets' `places`, and the chosen
    /// cloud when `need_main` (a manifest without targets, `--prune`) or when it is the
    /// embedded one; a target's cloud that is not in clouds.yaml is an error naming it.
    pub async fn connect(
        cloud: Option<&str>,
        data_dir: Option<&Path>,
        places: Vec<Place>,
        need_main: bool,
    ) -> Result<Self, String> {
        if target::uses_embedded(cloud, data_dir) || need_main {
            let target::Target { api, embedded } = target::connect(cloud, data_dir).await?;
            let main = Arc::new(api);
            let targets = match embedded {
                // Every target's image goes to the embedded cloud, under its own identity.
                Some(_) => places.into_iter().map(|p| (p, main.clone())).collect(),
                None => connect_targets(places)?,
            };
            return Ok(Self {
                main: Some(main),
                targets,
                _embedded: embedded,
            });
        }
        Ok(Self {
            main: None,
            targets: connect_targets(places)?,
            _embedded: None,
        })
    }

    /// The chosen cloud's client.
    pub fn main(&self) -> Option<&Arc<GlanceClient>> {
        self.main.as_ref()
    }

    /// The client `document` goes to.
    pub fn api_for(&self, document: &Document) -> Option<&Arc<GlanceClient>> {
        self.api_at(&place_of(document.target.as_ref()))
    }

    /// The client of a place (`None`: the chosen cloud).
    pub fn api_at(&self, place: &Option<Place>) -> Option<&Arc<GlanceClient>> {
        match place {
            Some(place) => self.targets.get(place),
            None => self.main.as_ref(),
        }
    }

    /// Every distinct client, with its place (`None`: the chosen cloud).
    pub fn all(&self) -> impl Iterator<Item = (Option<&Place>, &Arc<GlanceClient>)> {
        self.main
            .iter()
            .map(|api| (None, api))
            .chain(self.targets.iter().map(|(place, api)| (Some(place), api)))
    }
}

fn connect_targets(places: Vec<Place>) -> Result<BTreeMap<Place, Arc<GlanceClient>>, String> {
    let mut targets = BTreeMap::new();
    for place in places {
        if targets.contains_key(&place) {
            continue;
        }
        let api = target::client_for_cloud(&place.0, place.1.as_deref()).map_err(|err| {
            format!(
                "a target's cloud {:?} (its cloudCredentialsRef.cloudName): {err}",
                place.0
            )
        })?;
        targets.insert(place, Arc::new(api));
    }
    Ok(targets)
}
