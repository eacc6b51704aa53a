//! Server-stored contact lists.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{SqliteStore, bump_change_seq, col, db, user_exists};
use crate::{ContactRecord, Contacts, GroupRecord, StoreError, StoreResult};

fn contact_from_row(row: &SqliteRow) -> StoreResult<ContactRecord> {
    Ok(ContactRecord {
        owner: col(row, "owner")?,
        contact: col(row, "contact")?,
        group: col(row, "group_name")?,
        level: col(row, "level")?,
        added_ms: col(row, "added_ms")?,
        listed: col(row, "listed")?,
    })
}

/// The columns `contact_from_row` reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "owner, contact, group_name, level, added_ms, listed"
    };
}

/// Whether `owner` has an entry for `contact`, and if so whether it is listed
/// (inside the caller's transaction).
async fn entry_listed(
    conn: &mut SqliteConnection,
    owner: &str,
    contact: &str,
) -> StoreResult<Option<bool>> {
    sqlx::query_scalar::<_, bool>("SELECT listed FROM contacts WHERE owner = ? AND contact = ?")
        .bind(owner)
        .bind(contact)
        .fetch_optional(conn)
        .await
        .map_err(db("look up contact"))
}

/// `owner`'s entry for `contact` (in the caller's transaction, or on the pool).
async fn entry<'e>(
    conn: impl sqlx::SqliteExecutor<'e>,
    owner: &str,
    contact: &str,
) -> StoreResult<Option<ContactRecord>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM contacts WHERE owner = ? AND contact = ?"
    ))
    .bind(owner)
    .bind(contact)
    .fetch_optional(conn)
    .await
    .map_err(db("look up contact"))?;
    row.as_ref().map(contact_from_row).transpose()
}

fn group_from_row(row: &SqliteRow) -> StoreResult<GroupRecord> {
    Ok(GroupRecord {
        owner: col(row, "owner")?,
        name: col(row, "name")?,
        created_ms: col(row, "created_ms")?,
    })
}

/// Whether `owner` has a group called `name` (inside the caller's transaction).
async fn group_exists(conn: &mut SqliteConnection, owner: &str, name: &str) -> StoreResult<bool> {
    let n = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM contact_groups WHERE owner = ? AND name = ?",
    )
    .bind(owner)
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(db("look up contact group"))?;
    Ok(n > 0)
}

/// Contact lists of the SQLite store.
///
/// - An owner has at most one entry per contact; upserting an existing entry
///   replaces its group and level but keeps its original `added_ms` (it records
///   when the contact was added, not when it was last edited).
/// - The owner must be a user (`NotFound` otherwise); the contact may be any
///   address, local or federated.
/// - `max_contacts` is checked in the same transaction as the insert, and only
///   when the entry is new to the list, so editing a full list still works. It
///   counts listed entries only; `max_blocked` of `block_contact` counts the
///   unlisted ones.
/// - `list_contacts` puts ungrouped entries first, then groups byte-wise, each by
///   contact address; `contacts_naming` is sorted by owner. Both leave out the
///   unlisted entries (blocks of people not in the list, `listed` = false).
/// - An unlisted entry always has the level `blocked` and no group: only
///   `block_contact` makes one, `upsert_contact` lists it, `unblock_contact`
///   deletes it.
/// - Groups live in `contact_groups`. Every group a contact names has a row
///   there (no foreign key can say so, see the migration): `upsert_contact`
///   inserts it if missing, `rename_group` and `remove_group` update the
///   contacts in the same transaction. Groups survive losing their last contact.
/// - Group writes check existence explicitly under the write lock (rather than
///   waiting for a constraint to fail) so that the error kinds and their order are
///   the documented ones: `NotFound` before `Conflict`.
#[async_trait]
impl Contacts for SqliteStore {
    async fn upsert_contact(&self, entry: &ContactRecord, max_contacts: u32) -> StoreResult<()> {
        let what = "save contact";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, &entry.owner).await? {
            return Err(StoreError::NotFound(format!("user {}", entry.owner)));
        }
        let existing = entry_listed(&mut tx, &entry.owner, &entry.contact).await?;
        if existing == Some(true) {
            sqlx::query(
                "UPDATE contacts SET group_name = ?, level = ? WHERE owner = ? AND contact = ?",
            )
            .bind(entry.group.as_deref())
            .bind(entry.level.as_deref())
            .bind(&entry.owner)
            .bind(&entry.contact)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        } else {
            let count = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM contacts WHERE owner = ? AND listed",
            )
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
            // A blocked person who was not in the list joins it now: the entry
            // takes the given values and is as new as a fresh one.
            let sql = if existing.is_some() {
                "UPDATE contacts SET group_name = ?, level = ?, added_ms = ?, listed = TRUE \
                 WHERE owner = ? AND contact = ?"
            } else {
                "INSERT INTO contacts (group_name, level, added_ms, owner, contact, listed) \
                 VALUES (?, ?, ?, ?, ?, TRUE)"
            };
            sqlx::query(sql)
                .bind(entry.group.as_deref())
                .bind(entry.level.as_deref())
                .bind(entry.added_ms)
                .bind(&entry.owner)
                .bind(&entry.contact)
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
        }
        if let Some(group) = entry.group.as_deref() {
            // A group that exists keeps its creation time.
            sqlx::query(
                "INSERT INTO contact_groups (owner, name, created_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (owner, name) DO NOTHING",
            )
            .bind(&entry.owner)
            .bind(group)
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
        let done = sqlx::query("DELETE FROM contacts WHERE owner = ? AND contact = ? AND listed")
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM contacts WHERE owner = ? AND listed \
             ORDER BY group_name IS NOT NULL, group_name, contact"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list contacts"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn contacts_naming(&self, contact: &str) -> StoreResult<Vec<ContactRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM contacts WHERE contact = ? AND listed ORDER BY owner"
        ))
        .bind(contact)
        .fetch_all(&self.pool)
        .await
        .map_err(db("find contacts naming"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn all_contacts(&self) -> StoreResult<Vec<ContactRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM contacts ORDER BY owner, contact"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list all contacts"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn get_contact(&self, owner: &str, contact: &str) -> StoreResult<Option<ContactRecord>> {
        entry(&self.pool, owner, contact).await
    }

    async fn block_contact(
        &self,
        owner: &str,
        contact: &str,
        now_ms: i64,
        max_blocked: u32,
    ) -> StoreResult<ContactRecord> {
        let what = "block contact";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, owner).await? {
            return Err(StoreError::NotFound(format!("user {owner}")));
        }
        let record = match entry(&mut *tx, owner, contact).await? {
            Some(existing) => {
                sqlx::query("UPDATE contacts SET level = ? WHERE owner = ? AND contact = ?")
                    .bind(ContactRecord::BLOCKED)
                    .bind(owner)
                    .bind(contact)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(what))?;
                ContactRecord {
                    level: Some(ContactRecord::BLOCKED.to_owned()),
                    ..existing
                }
            }
            None => {
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM contacts WHERE owner = ? AND NOT listed",
                )
                .bind(owner)
                .fetch_one(&mut *tx)
                .await
                .map_err(db(what))?;
                if count >= i64::from(max_blocked) {
                    return Err(StoreError::Limit(format!(
                        "{owner} already blocks {count} people outside their contact list \
                         (limit {max_blocked})"
                    )));
                }
                sqlx::query(
                    "INSERT INTO contacts (owner, contact, group_name, level, added_ms, listed) \
                     VALUES (?, ?, NULL, ?, ?, FALSE)",
                )
                .bind(owner)
                .bind(contact)
                .bind(ContactRecord::BLOCKED)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
                ContactRecord {
                    owner: owner.to_owned(),
                    contact: contact.to_owned(),
                    group: None,
                    level: Some(ContactRecord::BLOCKED.to_owned()),
                    added_ms: now_ms,
                    listed: false,
                }
            }
        };
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))?;
        Ok(record)
    }

    async fn unblock_contact(
        &self,
        owner: &str,
        contact: &str,
    ) -> StoreResult<Option<ContactRecord>> {
        let what = "unblock contact";
        let mut tx = self.begin_write(what).await?;
        let remaining = match entry(&mut *tx, owner, contact).await? {
            Some(e) if e.is_blocked() && e.listed => {
                sqlx::query("UPDATE contacts SET level = NULL WHERE owner = ? AND contact = ?")
                    .bind(owner)
                    .bind(contact)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(what))?;
                Some(ContactRecord { level: None, ..e })
            }
            Some(e) if e.is_blocked() => {
                sqlx::query("DELETE FROM contacts WHERE owner = ? AND contact = ?")
                    .bind(owner)
                    .bind(contact)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(what))?;
                None
            }
            _ => {
                return Err(StoreError::NotFound(format!(
                    "a block of {contact} by {owner}"
                )));
            }
        };
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))?;
        Ok(remaining)
    }

    async fn list_blocked(&self, owner: &str) -> StoreResult<Vec<ContactRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM contacts WHERE owner = ? AND level = ? ORDER BY contact"
        ))
        .bind(owner)
        .bind(ContactRecord::BLOCKED)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list blocked contacts"))?;
        rows.iter().map(contact_from_row).collect()
    }

    async fn list_groups(&self, owner: &str) -> StoreResult<Vec<GroupRecord>> {
        let rows = sqlx::query(
            "SELECT owner, name, created_ms FROM contact_groups WHERE owner = ? ORDER BY name",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list contact groups"))?;
        rows.iter().map(group_from_row).collect()
    }

    async fn add_group(&self, owner: &str, name: &str, now_ms: i64) -> StoreResult<()> {
        let what = "add contact group";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, owner).await? {
            return Err(StoreError::NotFound(format!("user {owner}")));
        }
        if group_exists(&mut tx, owner, name).await? {
            return Err(StoreError::Conflict(format!(
                "{owner} already has a group {name:?}"
            )));
        }
        sqlx::query("INSERT INTO contact_groups (owner, name, created_ms) VALUES (?, ?, ?)")
            .bind(owner)
            .bind(name)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn rename_group(&self, owner: &str, old: &str, new: &str) -> StoreResult<()> {
        let what = "rename contact group";
        let mut tx = self.begin_write(what).await?;
        if !group_exists(&mut tx, owner, old).await? {
            return Err(StoreError::NotFound(format!("group {old:?} of {owner}")));
        }
        if group_exists(&mut tx, owner, new).await? {
            return Err(StoreError::Conflict(format!(
                "{owner} already has a group {new:?}"
            )));
        }
        sqlx::query("UPDATE contact_groups SET name = ? WHERE owner = ? AND name = ?")
            .bind(new)
            .bind(owner)
            .bind(old)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        sqlx::query("UPDATE contacts SET group_name = ? WHERE owner = ? AND group_name = ?")
            .bind(new)
            .bind(owner)
            .bind(old)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn remove_group(&self, owner: &str, name: &str) -> StoreResult<u64> {
        let what = "remove contact group";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("DELETE FROM contact_groups WHERE owner = ? AND name = ?")
            .bind(owner)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("group {name:?} of {owner}")));
        }
        let ungrouped =
            sqlx::query("UPDATE contacts SET group_name = NULL WHERE owner = ? AND group_name = ?")
                .bind(owner)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))?;
        Ok(ungrouped.rows_affected())
    }
}
