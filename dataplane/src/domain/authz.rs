//! Who may do what in a workspace, beyond channel membership (which the store checks under its
//! row locks): the workspace roles of `users.role` (owner, admin, member, guest).
//!
//! One place for these decisions, so later features (channel moderation, archive, broadcast
//! mentions) extend a single matrix. It must not touch storage beyond reading the role.

use palaver_crds::WorkspaceName;

use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Guest,
}

impl Role {
    pub fn from_db(s: &str) -> Self {
        match s {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "guest" => Self::Guest,
            _ => Self::Member,
        }
    }

    /// Owners and admins moderate: they may delete anyone's message.
    pub fn moderates(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

/// The user's workspace role (member if the user is unknown).
pub async fn role(store: &Store, ws: &WorkspaceName, user: &str) -> Result<Role, sqlx::Error> {
    Ok(store.user_role(ws, user).await?.map_or(Role::Member, |r| Role::from_db(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_and_admins_moderate() {
        assert!(Role::from_db("owner").moderates());
        assert!(Role::from_db("admin").moderates());
        assert!(!Role::from_db("member").moderates());
        assert!(!Role::from_db("guest").moderates());
        assert_eq!(Role::from_db("anything else"), Role::Member);
    }
}
