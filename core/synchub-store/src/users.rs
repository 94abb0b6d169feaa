//! The ops console's users and their sessions (migration 0008). A user's
//! password is kept only as the hash the caller made (argon2, PHC string);
//! a session only as the hash of its cookie token, so a copy of the store
//! opens no session. Hashing and token making belong to the console.

use sqlx::Row;

use crate::{now_text, QueryContext, Store, StoreError};

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads every page; changes nothing.
    Viewer,
    /// Also resolves conflicts, replays dead letters, merges and unmerges.
    Operator,
    /// Also sees the users and the audit log.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role of a stored name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether the role may change things (resolve, replay, merge, unmerge).
    pub fn can_act(self) -> bool {
        self >= Role::Operator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A console user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The password's hash (PHC string).
    pub password_hash: String,
    /// When the user was added.
    pub created_at: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A live session: its user and the CSRF token its forms carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.password_hash, u.created_at";

fn decode_user(r: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    const CTX: &str = "reading a console user";
    let role: String = r.try_get("role").ctx(CTX)?;
    Ok(User {
        id: r.try_get("id").ctx(CTX)?,
        name: r.try_get("name").ctx(CTX)?,
        role: Role::parse(&role)
            .ok_or_else(|| crate::corrupt(CTX, format!("unknown role `{role}`")))?,
        password_hash: r.try_get("password_hash").ctx(CTX)?,
        created_at: r.try_get("created_at").ctx(CTX)?,
    })
}

impl Store {
    /// Adds a user, or gives an existing one a new role and password hash
    /// and ends its sessions. True when the user is new.
    pub async fn put_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "saving a console user";
        let now = now_text();
        let mut tx = self.begin().await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM console_user WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .ctx(CTX)?;
        match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE console_user SET role = $1, password_hash = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(role.as_str())
                .bind(password_hash)
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx(CTX)?;
                sqlx::query("DELETE FROM console_session WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .ctx(CTX)?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO console_user (name, role, password_hash, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(&now)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .ctx(CTX)?;
            }
        }
        tx.commit().await.ctx(CTX)?;
        Ok(existing.is_none())
    }

    /// A user by login name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_user u WHERE u.name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .ctx("reading a console user")?;
        row.as_ref().map(decode_user).transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_user u ORDER BY u.name"
        ))
        .fetch_all(&self.pool)
        .await
        .ctx("listing console users")?;
        rows.iter().map(decode_user).collect()
    }

    /// Opens a session for `user_id` until `expires_at` (RFC 3339 UTC),
    /// keyed by the hash of its cookie token; expired sessions are dropped.
    pub async fn open_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        const CTX: &str = "opening a console session";
        let now = now_text();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM console_session WHERE expires_at <= $1")
            .bind(&now)
            .execute(&mut *tx)
            .await
            .ctx(CTX)?;
        sqlx::query(
            "INSERT INTO console_session (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(&now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .ctx(CTX)?;
        tx.commit().await.ctx(CTX)
    }

    /// The live session of a token hash, with its user.
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        const CTX: &str = "reading a console session";
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM console_session s \
             JOIN console_user u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await
        .ctx(CTX)?;
        row.map(|r| {
            Ok(Session {
                user: decode_user(&r)?,
                csrf_token: r.try_get("csrf_token").ctx(CTX)?,
                expires_at: r.try_get("expires_at").ctx(CTX)?,
            })
        })
        .transpose()
    }

    /// Ends a session.
    pub async fn close_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_session WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .ctx("closing a console session")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_by_what_they_may_do() {
        assert!(!Role::Viewer.can_act());
        assert!(Role::Operator.can_act() && Role::Admin.can_act());
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
