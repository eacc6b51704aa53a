//! Registrar bindings.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{SqliteStore, col, db, narrow};
use crate::{BindingChange, BindingRecord, Registrations, StoreError, StoreResult};

/// Encodes a list of strings as the JSON text stored in `path` / `features`.
fn to_json_list(list: &[String], name: &str) -> StoreResult<String> {
    serde_json::to_string(list)
        .map_err(|_| StoreError::Backend(format!("cannot encode binding {name}")))
}

/// Decodes a `path` / `features` column. serde's message is left out: it may
/// quote the stored text.
fn from_json_list(text: &str, name: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| {
        StoreError::Backend(format!("binding column {name} is not a JSON string list"))
    })
}

fn binding_from_row(row: &SqliteRow) -> StoreResult<BindingRecord> {
    let reg_id: Option<i64> = col(row, "reg_id")?;
    let q_milli: Option<i64> = col(row, "q_milli")?;
    let path: String = col(row, "path")?;
    let features: String = col(row, "features")?;
    Ok(BindingRecord {
        aor: col(row, "aor")?,
        contact: col(row, "contact")?,
        instance: col(row, "instance")?,
        reg_id: reg_id.map(|v| narrow(v, "reg_id")).transpose()?,
        q_milli: q_milli.map(|v| narrow(v, "q_milli")).transpose()?,
        expires_ms: col(row, "expires_ms")?,
        call_id: col(row, "call_id")?,
        cseq: narrow(col::<i64>(row, "cseq")?, "cseq")?,
        transport: col(row, "transport")?,
        source: col(row, "source_addr")?,
        local: col(row, "local_addr")?,
        path: from_json_list(&path, "path")?,
        user_agent: col(row, "user_agent")?,
        features: from_json_list(&features, "features")?,
        registered_ms: col(row, "registered_ms")?,
    })
}

/// Rows per multi-row upsert (15 parameters each, far below SQLite's limit).
const UPSERT_CHUNK: usize = 64;

/// Inserts or replaces `rows` in one statement, in order (a later row for the
/// same binding wins, as if applied one by one).
async fn upsert_many(conn: &mut SqliteConnection, rows: &[&BindingRecord]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO bindings (aor, contact, instance, reg_id, q_milli, expires_ms, \
         call_id, cseq, transport, source_addr, local_addr, path, user_agent, features, \
         registered_ms) VALUES ",
    );
    for i in 0..rows.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(
        " ON CONFLICT (aor, contact) DO UPDATE SET \
         instance = excluded.instance, reg_id = excluded.reg_id, \
         q_milli = excluded.q_milli, expires_ms = excluded.expires_ms, \
         call_id = excluded.call_id, cseq = excluded.cseq, \
         transport = excluded.transport, source_addr = excluded.source_addr, \
         local_addr = excluded.local_addr, path = excluded.path, \
         user_agent = excluded.user_agent, features = excluded.features, \
         registered_ms = excluded.registered_ms",
    );
    // Built only from constants and a row count: nothing user-supplied.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in rows {
        q = q
            .bind(&b.aor)
            .bind(&b.contact)
            .bind(b.instance.as_deref())
            .bind(b.reg_id.map(i64::from))
            .bind(b.q_milli.map(i64::from))
            .bind(b.expires_ms)
            .bind(&b.call_id)
            .bind(i64::from(b.cseq))
            .bind(&b.transport)
            .bind(&b.source)
            .bind(&b.local)
            .bind(to_json_list(&b.path, "path")?)
            .bind(b.user_agent.as_deref())
            .bind(to_json_list(&b.features, "features")?)
            .bind(b.registered_ms);
    }
    q.execute(conn).await.map_err(db("apply bindings"))?;
    Ok(())
}

async fn apply_one(conn: &mut SqliteConnection, change: &BindingChange) -> StoreResult<()> {
    let what = "apply bindings";
    match change {
        BindingChange::Upsert(b) => {
            sqlx::query(
                "INSERT INTO bindings (aor, contact, instance, reg_id, q_milli, expires_ms, \
                 call_id, cseq, transport, source_addr, local_addr, path, user_agent, features, \
                 registered_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (aor, contact) DO UPDATE SET \
                 instance = excluded.instance, reg_id = excluded.reg_id, \
                 q_milli = excluded.q_milli, expires_ms = excluded.expires_ms, \
                 call_id = excluded.call_id, cseq = excluded.cseq, \
                 transport = excluded.transport, source_addr = excluded.source_addr, \
                 local_addr = excluded.local_addr, path = excluded.path, \
                 user_agent = excluded.user_agent, features = excluded.features, \
                 registered_ms = excluded.registered_ms",
            )
            .bind(&b.aor)
            .bind(&b.contact)
            .bind(b.instance.as_deref())
            .bind(b.reg_id.map(i64::from))
            .bind(b.q_milli.map(i64::from))
            .bind(b.expires_ms)
            .bind(&b.call_id)
            .bind(i64::from(b.cseq))
            .bind(&b.transport)
            .bind(&b.source)
            .bind(&b.local)
            .bind(to_json_list(&b.path, "path")?)
            .bind(b.user_agent.as_deref())
            .bind(to_json_list(&b.features, "features")?)
            .bind(b.registered_ms)
            .execute(conn)
            .await
            .map_err(db(what))?;
        }
        BindingChange::Remove { aor, contact } => {
            sqlx::query("DELETE FROM bindings WHERE aor = ? AND contact = ?")
                .bind(aor)
                .bind(contact)
                .execute(conn)
                .await
                .map_err(db(what))?;
        }
        BindingChange::RemoveAll { aor } => {
            sqlx::query("DELETE FROM bindings WHERE aor = ?")
                .bind(aor)
                .execute(conn)
                .await
                .map_err(db(what))?;
        }
    }
    Ok(())
}

/// Registrar bindings of the SQLite store.
///
/// - A batch applies in order, in one transaction: all of it or none of it. A
///   binding with `q_milli` above 1000 is refused by the schema and fails its batch.
/// - Removing a binding (or all of an AOR's) that is not stored is not an error:
///   the registrar's view and the table may legitimately differ after a purge.
/// - Bindings are not tied to the users table, so a user removed while its
///   REGISTER was in flight cannot make a whole batch fail; `remove_user` deletes
///   them. They do not move the change sequence.
/// - `load_bindings` is sorted by (aor, contact).
#[async_trait]
impl Registrations for SqliteStore {
    async fn apply_bindings(&self, changes: &[BindingChange]) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let what = "apply bindings";
        let mut tx = self.begin_write(what).await?;
        // Runs of upserts go in multi-row statements: under load the registrar
        // hands over hundreds at once, and each statement is a round trip to
        // SQLite's worker thread.
        let mut run: Vec<&BindingRecord> = Vec::new();
        for change in changes {
            match change {
                BindingChange::Upsert(b) => {
                    run.push(b);
                    if run.len() == UPSERT_CHUNK {
                        upsert_many(&mut tx, &run).await?;
                        run.clear();
                    }
                }
                other => {
                    upsert_many(&mut tx, &run).await?;
                    run.clear();
                    apply_one(&mut tx, other).await?;
                }
            }
        }
        upsert_many(&mut tx, &run).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn load_bindings(&self, now_ms: i64) -> StoreResult<Vec<BindingRecord>> {
        let rows = sqlx::query(
            "SELECT aor, contact, instance, reg_id, q_milli, expires_ms, call_id, cseq, \
             transport, source_addr, local_addr, path, user_agent, features, registered_ms \
             FROM bindings WHERE expires_ms > ? ORDER BY aor, contact",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db("load bindings"))?;
        rows.iter().map(binding_from_row).collect()
    }

    async fn purge_expired_bindings(&self, now_ms: i64) -> StoreResult<u64> {
        let what = "purge expired bindings";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM bindings WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(done.rows_affected())
    }
}
