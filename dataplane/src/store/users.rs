//! The `users` table as people see it: display names, avatars, roles, the people search.
//!
//! Owns reading users (creating them is `ensure_user`, with the auto-joins, in channels.rs). It
//! must not decide what a role allows (the domain's authz does).

use palaver_crds::WorkspaceName;
use serde::Serialize;

use super::Store;

/// A user as others see them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Person {
    pub id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: String,
}

const PERSON_COLUMNS: &str = "id, display_name, avatar_url, role";

/// `%` and `_` (and the escape itself) match literally in a LIKE prefix.
fn like_prefix(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// People by id; `q` (optional) matches a prefix of the id or of the display name, case
    /// insensitively. `after`: the previous page's last id.
    pub async fn people(&self, ws: &WorkspaceName, q: Option<&str>, after: Option<&str>, limit: i64) -> Result<Vec<Person>, sqlx::Error> {
        let pattern = q.map(|q| like_prefix(&q.to_lowercase()));
        let sql = Store::tenant_sql(
            ws,
            &format!(
                "SELECT {PERSON_COLUMNS} FROM {{s}}.users WHERE ($1::text IS NULL OR lower(id) LIKE $1 OR lower(display_name) LIKE $1) \
                 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
            ),
        );
        sqlx::query_as(&sql).bind(pattern).bind(after).bind(limit).fetch_all(self.pool()).await
    }

    pub async fn person(&self, ws: &WorkspaceName, id: &str) -> Result<Option<Person>, sqlx::Error> {
        let sql = Store::tenant_sql(ws, &format!("SELECT {PERSON_COLUMNS} FROM {{s}}.users WHERE id = $1"));
        sqlx::query_as(&sql).bind(id).fetch_optional(self.pool()).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_match_literally() {
        assert_eq!(super::like_prefix("a_b%"), "a\\_b\\%%");
        assert_eq!(super::like_prefix(""), "%");
    }
}
