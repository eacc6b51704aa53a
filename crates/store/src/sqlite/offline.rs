//! Offline instant messages.

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{SqliteStore, col, db, narrow, user_exists};
use crate::{NewOfflineMessage, OfflineMessage, OfflineMessages, StoreError, StoreResult};

/// The columns `message_from_row` reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, recipient, sender, sender_display, content_type, body, received_ms, expires_ms, attempts"
    };
}

fn message_from_row(row: &SqliteRow) -> StoreResult<OfflineMessage> {
    Ok(OfflineMessage {
        id: col(row, "id")?,
        recipient: col(row, "recipient")?,
        sender: col(row, "sender")?,
        sender_display: col(row, "sender_display")?,
        content_type: col(row, "content_type")?,
        body: col(row, "body")?,
        received_ms: col(row, "received_ms")?,
        expires_ms: col(row, "expires_ms")?,
        attempts: narrow(col::<i64>(row, "attempts")?, "attempts")?,
    })
}

/// Count, check and insert under the write lock, so two senders racing for the
/// last free slot cannot both get it.
async fn enqueue_in(
    conn: &mut SqliteConnection,
    msg: &NewOfflineMessage,
    max_per_user: u32,
) -> StoreResult<i64> {
    let what = "store offline message";
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db(what))?;
    if !user_exists(&mut tx, &msg.recipient).await? {
        return Err(StoreError::NotFound(format!("user {}", msg.recipient)));
    }
    let waiting =
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM offline_messages WHERE recipient = ?")
            .bind(&msg.recipient)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(what))?;
    if waiting >= i64::from(max_per_user) {
        return Err(StoreError::Limit(format!(
            "{} already has {waiting} offline message(s) waiting (limit {max_per_user})",
            msg.recipient
        )));
    }
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO offline_messages \
         (recipient, sender, sender_display, content_type, body, received_ms, expires_ms, attempts) \
         VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id",
    )
    .bind(&msg.recipient)
    .bind(&msg.sender)
    .bind(msg.sender_display.as_deref())
    .bind(&msg.content_type)
    .bind(msg.body.as_slice())
    .bind(msg.received_ms)
    .bind(msg.expires_ms)
    .fetch_one(&mut *tx)
    .await
    .map_err(db(what))?;
    tx.commit().await.map_err(db(what))?;
    Ok(id)
}

/// Offline messages of the SQLite store.
///
/// - `enqueue_offline` commits with `synchronous = FULL`: when it returns the
///   message is on disk and survives a power loss, not only a crash, because the
///   sender has been (or is about to be) told it was stored. The limit check and
///   the insert are one transaction. A recipient that is not a user is `NotFound`.
/// - Ids grow with every enqueue and are never reused; "oldest first" means in
///   enqueue (id) order, whatever `received_ms` says.
/// - A message whose `expires_ms <= now_ms` is expired; `pending_offline` still
///   returns it until `expire_offline` has taken it, so that expiry (and telling
///   the sender) happens in one place.
/// - `record_offline_attempt` and `delete_offline` of an unknown id are `NotFound`.
/// - None of this moves the change sequence.
#[async_trait]
impl OfflineMessages for SqliteStore {
    async fn enqueue_offline(
        &self,
        msg: &NewOfflineMessage,
        max_per_user: u32,
    ) -> StoreResult<i64> {
        let what = "store offline message";
        let mut conn = self.pool.acquire().await.map_err(db(what))?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .map_err(db(what))?;
        let result = enqueue_in(&mut conn, msg, max_per_user).await;
        let restored = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await;
        if restored.is_err() {
            // Not worth failing a committed enqueue for; just do not let the
            // (slower, still correct) connection go back to the pool.
            conn.close_on_drop();
        }
        result
    }

    async fn pending_offline(&self, recipient: &str) -> StoreResult<Vec<OfflineMessage>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM offline_messages WHERE recipient = ? ORDER BY id"
        ))
        .bind(recipient)
        .fetch_all(&self.pool)
        .await
        .map_err(db("load offline messages"))?;
        rows.iter().map(message_from_row).collect()
    }

    /// Sorted by address.
    async fn offline_recipients(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT recipient FROM offline_messages ORDER BY recipient",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("list offline recipients"))
    }

    async fn record_offline_attempt(&self, id: i64) -> StoreResult<()> {
        let what = "record offline delivery attempt";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("UPDATE offline_messages SET attempts = attempts + 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("offline message {id}")));
        }
        tx.commit().await.map_err(db(what))
    }

    async fn delete_offline(&self, id: i64) -> StoreResult<()> {
        let what = "delete offline message";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM offline_messages WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("offline message {id}")));
        }
        tx.commit().await.map_err(db(what))
    }

    /// Returned in id order. Selected and deleted under one write lock, so a
    /// message is returned by exactly one call even with two processes expiring.
    async fn expire_offline(&self, now_ms: i64) -> StoreResult<Vec<OfflineMessage>> {
        let what = "expire offline messages";
        let mut tx = self.begin_write(what).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM offline_messages WHERE expires_ms <= ? ORDER BY id"
        ))
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(db(what))?;
        let expired = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if !expired.is_empty() {
            sqlx::query("DELETE FROM offline_messages WHERE expires_ms <= ?")
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
        }
        tx.commit().await.map_err(db(what))?;
        Ok(expired)
    }
}
