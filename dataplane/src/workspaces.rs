//! The set of active workspaces this pod serves, cached from the control registry.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use palaver_crds::WorkspaceName;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

#[derive(Clone)]
pub struct Workspaces {
    store: Store,
    known: Arc<RwLock<BTreeSet<WorkspaceName>>>,
}

impl Workspaces {
    pub fn new(store: Store) -> Self {
        Self { store, known: Arc::default() }
    }

    pub fn list(&self) -> Vec<WorkspaceName> {
        self.known.read().expect("lock").iter().cloned().collect()
    }

    /// Whether `ws` is active; a miss re-reads the registry so a just-provisioned workspace
    /// works at once.
    pub async fn is_active(&self, ws: &WorkspaceName) -> Result<bool, sqlx::Error> {
        if self.known.read().expect("lock").contains(ws) {
            return Ok(true);
        }
        self.refresh().await?;
        Ok(self.known.read().expect("lock").contains(ws))
    }

    pub async fn refresh(&self) -> Result<(), sqlx::Error> {
        let list = self.store.active_workspaces().await?;
        *self.known.write().expect("lock") = list.into_iter().collect();
        Ok(())
    }

    pub async fn run_refresh(self, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "workspace registry refresh failed");
            }
        }
    }
}
