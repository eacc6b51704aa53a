//! Domains, users and credentials.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::{SqliteStore, bump_change_seq, col, db, user_exists};
use crate::{
    Credentials, Directory, DomainRecord, Ha1, NewUser, PolicyScope, StoreError, StoreResult,
    UserRecord,
};

/// Writes a user's HA1 rows (the old ones must be gone), keeping their order.
async fn insert_ha1(
    conn: &mut SqliteConnection,
    address: &str,
    creds: &Credentials,
) -> StoreResult<()> {
    let mut seen = HashSet::new();
    for h in &creds.ha1 {
        // Two values for one (realm, algorithm, username) would make the digest
        // check ambiguous; refuse before the unique index does, with a clear message.
        if !seen.insert((&h.realm, &h.algorithm, &h.username)) {
            return Err(StoreError::Conflict(format!(
                "credentials of {address} list realm {:?}, algorithm {}, username {:?} twice",
                h.realm, h.algorithm, h.username
            )));
        }
    }
    for (position, h) in creds.ha1.iter().enumerate() {
        let position = i64::try_from(position)
            .map_err(|_| StoreError::Backend("too many HA1 values".to_owned()))?;
        sqlx::query(
            "INSERT INTO user_ha1 (address, position, realm, algorithm, username, hex) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(address)
        .bind(position)
        .bind(&h.realm)
        .bind(&h.algorithm)
        .bind(&h.username)
        .bind(&h.hex)
        .execute(&mut *conn)
        .await
        .map_err(db("store digest credentials"))?;
    }
    Ok(())
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        address: col(row, "address")?,
        display_name: col(row, "display_name")?,
        created_ms: col(row, "created_ms")?,
        admin: col(row, "admin")?,
    })
}

/// The directory of the SQLite store.
///
/// - `add_user` derives the user's domain from the part of the address after its
///   last `@`; an address without one, or whose domain is not served, is
///   `NotFound`.
/// - `remove_user`, `set_credentials`, `set_display_name` and `set_admin` of an
///   unknown user are `NotFound`.
/// - `remove_user` removes, in one transaction, the user, its HA1 rows, its
///   registrar bindings, the contacts and contact groups it owns, every contact
///   entry naming it in other users' lists, the offline messages addressed to it,
///   its user-scope policies of every kind and its web sessions. Messages it sent
///   to others stay; other users' groups stay, even if removing it empties them.
/// - `set_credentials` deletes the user's web sessions in its transaction; a
///   refused change (duplicate HA1) keeps them.
/// - A new user is not an administrator; `set_admin` is the only way to change that.
/// - HA1 values come back in the order they were given; one (realm, algorithm,
///   username) listed twice is `Conflict`.
#[async_trait]
impl Directory for SqliteStore {
    async fn add_domain(&self, name: &str, now_ms: i64) -> StoreResult<()> {
        let what = "add domain";
        let mut tx = self.begin_write(what).await?;
        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM domains WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(what))?;
        if exists > 0 {
            return Err(StoreError::Conflict(format!(
                "domain {name} already exists"
            )));
        }
        sqlx::query("INSERT INTO domains (name, created_ms) VALUES (?, ?)")
            .bind(name)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn remove_domain(&self, name: &str) -> StoreResult<()> {
        let what = "remove domain";
        let mut tx = self.begin_write(what).await?;
        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM domains WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(what))?;
        if exists == 0 {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        let users = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE domain = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(what))?;
        if users > 0 {
            return Err(StoreError::Conflict(format!(
                "domain {name} still has {users} user(s)"
            )));
        }
        sqlx::query("DELETE FROM domains WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn list_domains(&self) -> StoreResult<Vec<DomainRecord>> {
        let rows = sqlx::query("SELECT name, created_ms FROM domains ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list domains"))?;
        rows.iter()
            .map(|row| {
                Ok(DomainRecord {
                    name: col(row, "name")?,
                    created_ms: col(row, "created_ms")?,
                })
            })
            .collect()
    }

    async fn add_user(&self, user: &NewUser) -> StoreResult<()> {
        let what = "add user";
        let address = user.address.as_str();
        let Some((_, domain)) = address.rsplit_once('@') else {
            return Err(StoreError::NotFound(format!(
                "domain of {address} (the address has no '@')"
            )));
        };
        let mut tx = self.begin_write(what).await?;
        let served = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM domains WHERE name = ?")
            .bind(domain)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(what))?;
        if served == 0 {
            return Err(StoreError::NotFound(format!(
                "domain {domain} is not served"
            )));
        }
        if user_exists(&mut tx, address).await? {
            return Err(StoreError::Conflict(format!(
                "user {address} already exists"
            )));
        }
        sqlx::query(
            "INSERT INTO users (address, domain, display_name, password_hash, created_ms, admin) \
             VALUES (?, ?, ?, ?, ?, FALSE)",
        )
        .bind(address)
        .bind(domain)
        .bind(user.display_name.as_deref())
        .bind(&user.credentials.password_hash)
        .bind(user.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(what))?;
        insert_ha1(&mut tx, address, &user.credentials).await?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn remove_user(&self, address: &str) -> StoreResult<()> {
        let what = "remove user";
        let mut tx = self.begin_write(what).await?;
        if !user_exists(&mut tx, address).await? {
            return Err(StoreError::NotFound(format!("user {address}")));
        }
        // Children first, explicitly: the result must not depend on the
        // foreign-key pragma, and some of these rows have no foreign key at all.
        let policy_scope = PolicyScope::User(address.to_owned()).key();
        let deletes: [(&'static str, &str); 9] = [
            ("DELETE FROM user_ha1 WHERE address = ?", address),
            ("DELETE FROM bindings WHERE aor = ?", address),
            ("DELETE FROM contacts WHERE owner = ?", address),
            ("DELETE FROM contacts WHERE contact = ?", address),
            ("DELETE FROM contact_groups WHERE owner = ?", address),
            ("DELETE FROM web_sessions WHERE user_address = ?", address),
            ("DELETE FROM offline_messages WHERE recipient = ?", address),
            ("DELETE FROM policies WHERE scope = ?", &policy_scope),
            ("DELETE FROM users WHERE address = ?", address),
        ];
        for (sql, key) in deletes {
            sqlx::query(sql)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn set_credentials(&self, address: &str, creds: &Credentials) -> StoreResult<()> {
        let what = "set credentials";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE address = ?")
            .bind(&creds.password_hash)
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {address}")));
        }
        sqlx::query("DELETE FROM user_ha1 WHERE address = ?")
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        insert_ha1(&mut tx, address, creds).await?;
        // Sessions opened with the old password end with it.
        sqlx::query("DELETE FROM web_sessions WHERE user_address = ?")
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn set_admin(&self, address: &str, admin: bool) -> StoreResult<()> {
        let what = "set administrator role";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("UPDATE users SET admin = ? WHERE address = ?")
            .bind(admin)
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {address}")));
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn set_display_name(&self, address: &str, name: Option<&str>) -> StoreResult<()> {
        let what = "set display name";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("UPDATE users SET display_name = ? WHERE address = ?")
            .bind(name)
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {address}")));
        }
        bump_change_seq(&mut tx).await?;
        tx.commit().await.map_err(db(what))
    }

    async fn get_user(&self, address: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT address, display_name, created_ms, admin FROM users WHERE address = ?",
        )
        .bind(address)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("get user"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT address, display_name, created_ms, admin FROM users ORDER BY address",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("list users"))?;
        rows.iter().map(user_from_row).collect()
    }

    async fn password_hash(&self, address: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE address = ?")
            .bind(address)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("get password hash"))
    }

    /// Sorted by address; one snapshot, so a concurrent password change is seen
    /// whole or not at all.
    async fn all_credentials(&self) -> StoreResult<Vec<(String, Credentials)>> {
        let what = "load credentials";
        let mut tx = self.begin_read(what).await?;
        let users = sqlx::query("SELECT address, password_hash FROM users ORDER BY address")
            .fetch_all(&mut *tx)
            .await
            .map_err(db(what))?;
        let ha1_rows = sqlx::query(
            "SELECT address, realm, algorithm, username, hex FROM user_ha1 \
             ORDER BY address, position",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;

        let mut out = Vec::with_capacity(users.len());
        let mut ha1 = ha1_rows.iter().peekable();
        for row in &users {
            let address: String = col(row, "address")?;
            let mut creds = Credentials {
                password_hash: col(row, "password_hash")?,
                ha1: Vec::new(),
            };
            // Both lists are sorted by address and HA1 rows cannot outlive their
            // user, so a merge walk pairs them.
            while let Some(h) = ha1.peek() {
                let owner: String = col(h, "address")?;
                if owner.as_str() > address.as_str() {
                    break;
                }
                if owner == address {
                    creds.ha1.push(Ha1 {
                        realm: col(h, "realm")?,
                        algorithm: col(h, "algorithm")?,
                        username: col(h, "username")?,
                        hex: col(h, "hex")?,
                    });
                }
                ha1.next();
            }
            out.push((address, creds));
        }
        Ok(out)
    }
}
