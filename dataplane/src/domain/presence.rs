//! Presence queries: the status of a set of users (the REST form of `presence_sub`'s first
//! answer). The state itself lives in `crate::presence` (Redis).
//!
//! Owns the request rules (at most [`PRESENCE_QUERY_MAX`] valid user ids). It must not change
//! anyone's presence: only connections do.

use super::Domain;
use crate::auth::{valid_user_id, Principal};
use crate::error::ApiError;
use crate::presence::UserPresence;

/// Most users one presence request or subscription names (issue 9).
pub const PRESENCE_QUERY_MAX: usize = 500;

/// Validates a list of user ids for a presence query or subscription.
pub fn validate_users(users: &[String]) -> Result<(), ApiError> {
    if users.len() > PRESENCE_QUERY_MAX {
        return Err(ApiError::too_large(format!("at most {PRESENCE_QUERY_MAX} users")));
    }
    match users.iter().find(|u| !valid_user_id(u)) {
        Some(bad) => Err(ApiError::bad_request(format!("invalid user id {bad:?}"))),
        None => Ok(()),
    }
}

impl Domain {
    pub async fn presence_of(&self, p: &Principal, users: &[String]) -> Result<Vec<UserPresence>, ApiError> {
        validate_users(users)?;
        Ok(futures::future::join_all(users.iter().map(|u| self.presence.status(&p.workspace, u))).await)
    }
}
