//! Server-stored contact lists.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, bump_change_seq, col, db, user_exists};
use crate::{ContactRecord, Contacts, StoreError, StoreResult};

fn contact_from_row(row: &SqliteRow) -> StoreResult<ContactRecord> {
    Ok(ContactRecord {
        owner: col(row, "owner")?,
        contact: col(row, "contact")?,
        group: col(row, "group_name")?,
        level: col(row, "level")?,
        added_ms: col(row, "added_ms")?,
    })
}

/// Contact lists of the SQLite store.
///
/// - An owner has at most one entry per contact; upserting an existing entry
///   replaces its group and level but keeps its original `added_ms` (it records
///   when the contact was added, not when it was last edited).
/// - The owner must be a user (`NotFound` otherwise); the contact may be any
///   address, local or federated.
/// - `max_contacts` is checked in the same transaction as the insert, and only
///   when the entry is new, so editing a full list still works.
/// - `list_contacts` puts ungrouped entries first, then groups byte-wise, each by
///   contact address; `contacts_naming` is sorted by owner.
#[async_trait]
impl Contacts for SqliteStore {
    async fn upsert_contact(&self, entry: &ContactRecord, max_contacts: u32) -> StoreResult<()> {
        let what = "save contact";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, &entry.owner).await? {
            return Err(StoreError::NotFound(format!("user {}", entry.owner)));
        }
        let updated = sqlx::query(
            "UPDATE contacts SET group_name = ?, level = ? WHERE owner = ? AND contact = ?",
        )
        .bind(entry.group.as_deref())
        .bind(entry.level.as_deref())
        .bind(&entry.owner)
        .bind(&entry.contact)
        .execute(&mut *tx)
        .await
        .map_err(db(what))?;
        if updated.rows_affected() == 0 {
            let count =
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM contacts WHERE owner = ?")
                    .bind(&entry.owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(what))?;
            if count >= i64::from(max_contacts) {
                return Err(StoreError::Limit(format!(
                    "the contact list of {} already holds {count} contact(s) (limit {max_contacts})",
                    entry.owner
                )));
            }
            sqlx::query(
                "INSERT INTO contacts (owner, contact, group_name, level, added_ms) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&entry.owner)
            .bind(&entry.contact)
            .bind(entry.group.as_deref())
            .bind(entry.level.as_deref())
            .bind(entry.added_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn remove_contact(&self, owner: &str, contact: &str) -> StoreResult<()> {
        let what = "remove contact";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM contacts WHERE owner = ? AND contact = ?")
            .bind(owner)
            .bind(contact)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "contact {contact} in the list of {owner}"
            )));
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn list_contacts(&self, owner: &str) -> StoreResult<Vec<ContactRecord>> {
        // `group_name IS NOT NULL` puts ungrouped entries first on every backend
        // (PostgreSQL sorts NULLs last by default, SQLite first).
        let rows = sqlx::query(
            "SELECT owner, contact, group_name, level, added_ms FROM contacts \
             WHERE owner = ? ORDER BY group_name IS NOT NULL, group_name, contact",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list contacts"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn contacts_naming(&self, contact: &str) -> StoreResult<Vec<ContactRecord>> {
        let rows = sqlx::query(
            "SELECT owner, contact, group_name, level, added_ms FROM contacts \
             WHERE contact = ? ORDER BY owner",
        )
        .bind(contact)
        .fetch_all(&self.pool)
        .await
        .map_err(db("find contacts naming"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn all_contacts(&self) -> StoreResult<Vec<ContactRecord>> {
        let rows = sqlx::query(
            "SELECT owner, contact, group_name, level, added_ms FROM contacts \
             ORDER BY owner, contact",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("list all contacts"))?;
        rows.iter().map(contact_from_row).collect()
    }
}
