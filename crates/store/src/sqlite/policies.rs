//! Scoped policy documents.

use async_trait::async_trait;

use super::{SqliteStore, bump_change_seq, col, db, user_exists};
use crate::{Policies, PolicyScope, StoreError, StoreResult};

/// Decodes a stored document. serde's message is left out: it may quote the text.
fn parse_doc(kind: &str, scope: &str, text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::Backend(format!("policy {kind} at {scope} is not valid JSON")))
}

/// Policies of the SQLite store.
///
/// - Documents are kept as JSON text and come back equal (as `serde_json::Value`)
///   to what was set.
/// - A user-scope document can only be set for an existing user (`NotFound`
///   otherwise), so that a policy cannot lie in wait for a future user of the same
///   address; `remove_user` deletes the user's documents of every kind.
/// - `list_policies` sorts by [`PolicyScope`]'s order: global first, then users by
///   address, byte-wise.
#[async_trait]
impl Policies for SqliteStore {
    async fn get_policy(
        &self,
        kind: &str,
        scope: &PolicyScope,
    ) -> StoreResult<Option<serde_json::Value>> {
        let key = scope.key();
        let text = sqlx::query_scalar::<_, String>(
            "SELECT doc FROM policies WHERE kind = ? AND scope = ?",
        )
        .bind(kind)
        .bind(&key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("get policy"))?;
        text.map(|t| parse_doc(kind, &key, &t)).transpose()
    }

    async fn set_policy(
        &self,
        kind: &str,
        scope: &PolicyScope,
        doc: &serde_json::Value,
    ) -> StoreResult<()> {
        let what = "set policy";
        let text = serde_json::to_string(doc)
            .map_err(|_| StoreError::Backend(format!("cannot encode policy {kind}")))?;
        let mut tx = self.begin_write(what).await?;
        if let PolicyScope::User(address) = scope
            && !user_exists(&mut tx, address).await?
        {
            return Err(StoreError::NotFound(format!("user {address}")));
        }
        sqlx::query(
            "INSERT INTO policies (kind, scope, doc) VALUES (?, ?, ?) \
             ON CONFLICT (kind, scope) DO UPDATE SET doc = excluded.doc",
        )
        .bind(kind)
        .bind(scope.key())
        .bind(text)
        .execute(&mut *tx)
        .await
        .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn clear_policy(&self, kind: &str, scope: &PolicyScope) -> StoreResult<()> {
        let what = "clear policy";
        let key = scope.key();
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM policies WHERE kind = ? AND scope = ?")
            .bind(kind)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("policy {kind} at {key}")));
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn list_policies(
        &self,
        kind: &str,
    ) -> StoreResult<Vec<(PolicyScope, serde_json::Value)>> {
        let rows = sqlx::query("SELECT scope, doc FROM policies WHERE kind = ?")
            .bind(kind)
            .fetch_all(&self.pool)
            .await
            .map_err(db("list policies"))?;
        let mut out = rows
            .iter()
            .map(|row| {
                let key: String = col(row, "scope")?;
                let text: String = col(row, "doc")?;
                let scope = PolicyScope::from_key(&key).ok_or_else(|| {
                    StoreError::Backend(format!("policy {kind} has unknown scope key {key:?}"))
                })?;
                Ok((scope, parse_doc(kind, &key, &text)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
