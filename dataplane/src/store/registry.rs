//! The control registry (`palaver_control.workspaces`), read-only for the data plane.

use palaver_crds::WorkspaceName;

use super::Store;

/// A workspace's own attachment limits (its Workspace's `spec.files`); `None`: the pod's default.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct OwnFileLimits {
    pub max_bytes: Option<i64>,
    pub max_per_message: Option<i32>,
    pub allowed_types: Option<Vec<String>>,
}

impl Store {
    pub async fn file_limits(&self, ws: &WorkspaceName) -> Result<OwnFileLimits, sqlx::Error> {
        let row = sqlx::query_as(
            "SELECT file_max_bytes AS max_bytes, file_max_per_message AS max_per_message, file_allowed_types AS allowed_types \
             FROM palaver_control.workspaces WHERE name = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.unwrap_or_default())
    }

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
