//! Signed-in web clients.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, col, db, user_exists};
use crate::{StoreError, StoreResult, WebSessionRecord, WebSessions};

/// The columns `session_from_row` reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "token_hash, user_address, created_ms, expires_ms, client"
    };
}

fn session_from_row(row: &SqliteRow) -> StoreResult<WebSessionRecord> {
    Ok(WebSessionRecord {
        token_hash: col(row, "token_hash")?,
        user: col(row, "user_address")?,
        created_ms: col(row, "created_ms")?,
        expires_ms: col(row, "expires_ms")?,
        client: col(row, "client")?,
    })
}

/// Web sessions of the SQLite store.
///
/// - The user must exist when the session is created (`NotFound`), checked under
///   the write lock together with the insert; the foreign key with cascade then
///   takes the sessions away with the user, and `remove_user` deletes them
///   explicitly as well.
/// - Token hashes are unique across all users; a duplicate is `Conflict` and
///   leaves the existing session as it was.
/// - "Expired at `now_ms`" means `expires_ms <= now_ms`, as for bindings and
///   offline messages. Lookups return expired sessions; only the purge deletes them.
/// - Error messages never quote a token hash: it identifies a live session, and
///   errors end up in logs.
/// - Nothing here moves the change sequence.
#[async_trait]
impl WebSessions for SqliteStore {
    async fn create_web_session(&self, session: &WebSessionRecord) -> StoreResult<()> {
        let what = "create web session";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, &session.user).await? {
            return Err(StoreError::NotFound(format!("user {}", session.user)));
        }
        let taken =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM web_sessions WHERE token_hash = ?")
                .bind(&session.token_hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(db(what))?;
        if taken > 0 {
            return Err(StoreError::Conflict(
                "a web session with this token hash already exists".to_owned(),
            ));
        }
        sqlx::query(concat!(
            "INSERT INTO web_sessions (",
            columns!(),
            ") VALUES (?, ?, ?, ?, ?)"
        ))
        .bind(&session.token_hash)
        .bind(&session.user)
        .bind(session.created_ms)
        .bind(session.expires_ms)
        .bind(session.client.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db(what))?;
        tx.commit().await.map_err(db(what))
    }

    async fn web_session(&self, token_hash: &str) -> StoreResult<Option<WebSessionRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM web_sessions WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("look up web session"))?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn web_sessions_of(&self, user: &str) -> StoreResult<Vec<WebSessionRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM web_sessions WHERE user_address = ? ORDER BY created_ms, token_hash"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list web sessions"))?;
        rows.iter().map(session_from_row).collect()
    }

    async fn revoke_web_session(&self, token_hash: &str) -> StoreResult<()> {
        let what = "revoke web session";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM web_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("web session".to_owned()));
        }
        tx.commit().await.map_err(db(what))
    }

    async fn revoke_web_sessions_of(&self, user: &str) -> StoreResult<u64> {
        let what = "revoke web sessions";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM web_sessions WHERE user_address = ?")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(done.rows_affected())
    }

    async fn purge_expired_web_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        let what = "purge expired web sessions";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(done.rows_affected())
    }
}
