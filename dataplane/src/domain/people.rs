//! People: the users of a workspace as others see them, and the people search.
//!
//! Owns the request rules (query length, paging). It must not change profiles: those come from
//! the token's claims when the user connects (the gateway's Auth extractor).

use super::Domain;
use crate::auth::{valid_user_id, Principal};
use crate::error::ApiError;
use crate::store::Person;

/// Longest search prefix.
pub const MAX_QUERY_CHARS: usize = 80;

impl Domain {
    /// People by id, optionally those whose id or name starts with `q`; and the next cursor.
    pub async fn people(
        &self,
        p: &Principal,
        q: Option<&str>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<Person>, Option<String>), ApiError> {
        if let Some(q) = q {
            if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
                return Err(ApiError::bad_request(format!("q: at most {MAX_QUERY_CHARS} characters, no control characters")));
            }
        }
        if cursor.is_some_and(|c| !valid_user_id(c)) {
            return Err(ApiError::bad_request("invalid cursor: pass the next_cursor of the previous page"));
        }
        let mut page = self.store.people(&p.workspace, q.filter(|q| !q.is_empty()), cursor, limit + 1).await?;
        let next = (page.len() as i64 > limit).then(|| page[limit as usize - 1].id.clone());
        page.truncate(limit as usize);
        Ok((page, next))
    }

    pub async fn person(&self, p: &Principal, id: &str) -> Result<Person, ApiError> {
        if !valid_user_id(id) {
            return Err(ApiError::bad_request("invalid user id"));
        }
        self.store.person(&p.workspace, id).await?.ok_or_else(|| ApiError::not_found(format!("no user {id} in this workspace")))
    }
}
