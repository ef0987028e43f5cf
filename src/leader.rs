//! Leader election on a `coordination.k8s.io` Lease: of all `glint run` processes, only the
//! lease holder reconciles and runs transfers. A standby takes the lease once the holder stops
//! renewing it (at most [`LEASE_SECONDS`] after its last renewal), and a holder that loses it
//! stops at once.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease stays valid after its last renewal: a dead leader's successor waits this
/// long at most.
pub const LEASE_SECONDS: u64 = 10;
/// How long before expiry the holder renews: renewals every `LEASE_SECONDS - GRACE_SECONDS`.
pub const GRACE_SECONDS: u64 = 3;

/// Where the lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: the pod name in a cluster.
    pub identity: String,
}

/// Why leader election could not run.
#[derive(Debug, thiserror::Error)]
#[error("leader election on Lease {namespace}/{name}: {source}")]
pub struct LeaderError {
    namespace: String,
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// A running election: follow it with [`Election::became_leader`] and
/// [`Election::lost_leadership`], end it with [`Election::step_down`].
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Joins the election (creating the Lease if it does not exist).
    pub async fn join(client: Client, config: &LeaseConfig) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, config.name.clone())
            .with_namespace(config.namespace.clone())
            .with_identity(config.identity.clone())
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await
            .map_err(|source| LeaderError {
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                source,
            })?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Whether this process leads right now.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Waits until this process holds the lease. `false` if the election ended instead.
    pub async fn became_leader(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Waits until this process no longer holds the lease (or the election ended).
    pub async fn lost_leadership(&mut self) {
        let _ = self.state.wait_for(|leader| !*leader).await;
    }

    /// Gives the lease up so a standby can take over at once (a clean shutdown).
    pub async fn step_down(self) {
        // Closing the channel makes the election task release the lease and end.
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leader lease"),
            Ok(Err(err)) => tracing::warn!(%err, "could not release the leader lease"),
            Err(err) => tracing::warn!(%err, "the leader election task failed"),
        }
    }
}
