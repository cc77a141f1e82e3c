//! The control registry (`palaver_control.workspaces`), read-only for the data plane.

use palaver_crds::WorkspaceName;

use super::Store;

impl Store {
    /// Names of the active workspaces; rows with an invalid name are skipped (and logged).
    pub async fn active_workspaces(&self) -> Result<Vec<WorkspaceName>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM palaver_control.workspaces WHERE state = 'active' ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(n,)| WorkspaceName::new(n).map_err(|e| tracing::error!(error = %e, "invalid workspace in registry")).ok())
            .collect())
    }
}
