//! The CLI's transfers: one manager per cloud of the run, each telling apply when a transfer
//! ends, all sharing one download per source between an object's targets.

use std::sync::Arc;
use std::time::Duration;

use super::TRANSFERS;
use super::destinations::{Destinations, Place};
use crate::glance::GlanceClient;
use crate::transfer::{SharedDownloads, SourcePolicy, TransferManager};

/// Every cloud's transfers for one run; the targets of one object share one download of its
/// source between their clouds.
pub struct RunTransfers {
    by_place: Vec<(Option<Place>, CliTransfers)>,
}

impl RunTransfers {
    pub fn start(destinations: &Destinations, retry_for: Duration) -> Result<Self, String> {
        let shared = Arc::new(SharedDownloads::new(
            &cli_policy().scratch,
            crate::transfer::shared::LINGER,
        ));
        let mut by_place = Vec::new();
        for (place, api) in destinations.all() {
            let transfers = cli_transfers(api, retry_for, Some(shared.clone()))?;
            by_place.push((place.cloned(), transfers));
        }
        Ok(Self { by_place })
    }

    /// The transfers into a place (`None`: the chosen cloud).
    pub fn at(&self, place: &Option<Place>) -> Option<&CliTransfers> {
        self.by_place
            .iter()
            .find(|(at, _)| at == place)
            .map(|(_, transfers)| transfers)
    }
}

/// The CLI runs on the user's own machine: loopback sources and local files are theirs.
pub(super) fn cli_policy() -> Arc<SourcePolicy> {
    Arc::new(SourcePolicy {
        allow_loopback: true,
        allow_files: true,
        // A bad value is reported by cli_transfers, before anything is transferred.
        scratch: crate::transfer::convert::ScratchSpace::from_env().unwrap_or_default(),
        ..SourcePolicy::default()
    })
}

/// The CLI's transfers, and word of each one's end, so that `glint apply` looks again the
/// moment the data is in rather than at its next poll.
pub struct CliTransfers {
    pub(super) manager: TransferManager<GlanceClient>,
    /// One permit per end: an end that comes before anyone waits is not lost.
    pub(super) ended: Arc<tokio::sync::Notify>,
    /// How long failures that may pass (Glance or the source not answering) are retried
    /// before apply gives the object up: `glint apply --retry-for`.
    pub(super) retry_for: Duration,
}

pub(super) fn cli_transfers(
    api: &Arc<GlanceClient>,
    retry_for: Duration,
    shared: Option<Arc<SharedDownloads>>,
) -> Result<CliTransfers, String> {
    crate::transfer::convert::ScratchSpace::from_env()?;
    let ended = Arc::new(tokio::sync::Notify::new());
    let notify = ended.clone();
    let manager = TransferManager::new(api.clone(), TRANSFERS, cli_policy(), Default::default())
        .map_err(|err| err.to_string())?
        .on_end(Arc::new(move |_: &str| notify.notify_one()));
    let manager = match shared {
        Some(shared) => manager.sharing(shared),
        None => manager,
    };
    Ok(CliTransfers {
        manager,
        ended,
        retry_for,
    })
}
