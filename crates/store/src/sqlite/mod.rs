//! SQLite backend: the embedded store of the Standard Edition.
//!
//! One database file holds everything except the compliance archive, which has
//! a file of its own ([`SqliteArchive`], described in its module). The store is
//! opened at the same time by the running server and by `switchboard` CLI
//! invocations (separate processes), which is why:
//! - the journal is in WAL mode, so readers never block the writer and a commit by
//!   one process is visible to the next transaction of the other;
//! - every write runs in a `BEGIN IMMEDIATE` transaction, which takes the write
//!   lock up front (waiting up to the busy timeout) instead of failing half-way with
//!   `SQLITE_BUSY_SNAPSHOT` when another process committed in between a read and a
//!   write; read-then-write checks (limits, existence) are therefore atomic;
//! - directory, policy and contact writes bump `meta.change_seq` in the same
//!   transaction, which the other process polls ([`crate::Store::change_seq`]);
//! - `synchronous = NORMAL`: a commit survives a crash of the process at once and
//!   a power loss once the WAL is checkpointed. Offline messages are the exception:
//!   the server has told the sender they were stored, so their commit is made with
//!   `synchronous = FULL` (see [`crate::OfflineMessages::enqueue_offline`]).
//!
//! Semantics shared with every backend (checked by [`crate::conformance`]):
//! - addresses and names are stored exactly as given; callers lower-case them;
//! - text sorts are byte-wise;
//! - "expired at `now_ms`" means `expires_ms <= now_ms`, for bindings, offline
//!   messages and web sessions alike;
//! - a failed call changes nothing and does not move the change sequence.

mod archive;
mod contacts;
mod directory;
mod offline;
mod policies;
mod registrations;
mod web_sessions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::{Store, StoreError, StoreResult};

pub use archive::SqliteArchive;

/// The embedded migrations; `migrations/sqlite` mirrors the PostgreSQL set.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's (or process's) write lock
/// before the call fails as [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a free pooled connection, as a multiple of the
/// busy timeout: a connection is held at most about one busy timeout by a call
/// stuck on the lock, so a caller queued behind it learns of the outage after
/// about two (10 s for the store, 2 s for an archive opened for critical mode).
const ACQUIRE_TIMEOUTS_PER_BUSY_TIMEOUT: u32 = 2;
/// SQLite has one writer at a time; a few connections are enough for concurrent
/// readers next to it, and each costs a thread and a page cache.
const MAX_CONNECTIONS: u32 = 4;
/// Attempts at opening while another process holds the lock on a database being
/// created (switching a new file to WAL cannot wait on the busy timeout).
const OPEN_ATTEMPTS: u32 = 5;

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_PROTOCOL: i32 = 15;
const SQLITE_NOLFS: i32 = 22;

/// The SQLite store. Cheap to clone (clones share one connection pool), so a
/// server can hand it to every task that needs it.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if missing) the database at
    /// `path` and brings its schema up to date. A new file is created readable by
    /// its owner only (mode 0600; new directories 0700).
    ///
    /// Safe to call from several processes at once on the same file: migrations
    /// run under the database write lock, so exactly one process applies each.
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened or
    /// written (permissions, disk full, held locked too long) and with
    /// [`StoreError::Backend`] when it is not a Switchboard database this build
    /// understands (corrupt, or migrated by a newer version).
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let pool = open_file(path, &MIGRATOR, BUSY_TIMEOUT, SqliteSynchronous::Normal).await?;
        Ok(SqliteStore { pool })
    }

    /// Opens a private, empty in-memory database, for tests of code built on the
    /// store. Nothing is persisted and no other handle can see it; it uses a
    /// single connection that is never recycled, because the data lives only as
    /// long as that connection.
    pub async fn open_in_memory() -> StoreResult<SqliteStore> {
        let pool = open_memory(&MIGRATOR).await?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection, waiting for them, so that the last one can
    /// checkpoint the WAL into the main file. Calls made through clones of this
    /// store fail with [`StoreError::Unavailable`] afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction holding the database write lock.
    async fn begin_write(&self, what: &str) -> StoreResult<Transaction<'static, Sqlite>> {
        begin_write(&self.pool, what).await
    }

    /// Starts a read transaction: one consistent snapshot for multi-query reads.
    async fn begin_read(&self, what: &str) -> StoreResult<Transaction<'static, Sqlite>> {
        begin_read(&self.pool, what).await
    }
}

/// Starts a write transaction on `pool` holding the database write lock
/// (`BEGIN IMMEDIATE`, waiting up to the busy timeout for it).
async fn begin_write(pool: &SqlitePool, what: &str) -> StoreResult<Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| classify(what, e))
}

/// Starts a read transaction on `pool`: one consistent snapshot for
/// multi-query reads.
async fn begin_read(pool: &SqlitePool, what: &str) -> StoreResult<Transaction<'static, Sqlite>> {
    pool.begin().await.map_err(|e| classify(what, e))
}

/// Opens (creating it and its parent directory if missing, owner-only) the
/// database file at `path` in WAL mode with the given busy timeout and
/// `synchronous` level, and applies `migrator` under the write lock. Shared by
/// every file database of this backend (the store and the archive), so that
/// they behave alike: same pool, retries, permissions and error classification.
pub(crate) async fn open_file(
    path: &Path,
    migrator: &'static Migrator,
    busy_timeout: Duration,
    synchronous: SqliteSynchronous,
) -> StoreResult<SqlitePool> {
    open_file_with(path, migrator, busy_timeout, synchronous, &[]).await
}

/// [`open_file`] with further per-connection `PRAGMA`s (name, value), set on
/// every connection of the pool when it is opened (the archive's page cache,
/// temporary storage and checkpoint interval).
pub(crate) async fn open_file_with(
    path: &Path,
    migrator: &'static Migrator,
    busy_timeout: Duration,
    synchronous: SqliteSynchronous,
    pragmas: &[(&'static str, &'static str)],
) -> StoreResult<SqlitePool> {
    create_private_file(path)?;
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(busy_timeout);
    for (name, value) in pragmas {
        options = options.pragma(*name, *value);
    }
    let mut attempt = 1;
    loop {
        let pool_options = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(busy_timeout.saturating_mul(ACQUIRE_TIMEOUTS_PER_BUSY_TIMEOUT));
        match connect_pool(pool_options, options.clone(), migrator).await {
            Ok(pool) => return Ok(pool),
            Err(e) if attempt < OPEN_ATTEMPTS && is_busy(&e) => {
                tracing::debug!(attempt, "database busy while opening; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(classify(&format!("open database {}", path.display()), e));
            }
        }
    }
}

/// Opens a private in-memory database on one connection that is never
/// recycled (the data lives only as long as it) and applies `migrator`.
pub(crate) async fn open_memory(migrator: &'static Migrator) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| classify("open in-memory database", e))?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool_options = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(BUSY_TIMEOUT.saturating_mul(ACQUIRE_TIMEOUTS_PER_BUSY_TIMEOUT));
    connect_pool(pool_options, options, migrator)
        .await
        .map_err(|e| classify("open in-memory database", e))
}

async fn connect_pool(
    pool_options: SqlitePoolOptions,
    options: SqliteConnectOptions,
    migrator: &'static Migrator,
) -> Result<SqlitePool, sqlx::Error> {
    let pool = pool_options.connect_with(options).await?;
    // Up to date already (the common case): no write lock is needed, so the
    // database opens even while another process holds it (an operator reading
    // the archive during an outage, a server starting while a backup runs).
    if migrations_applied(&pool, migrator).await {
        return Ok(pool);
    }
    {
        // The whole migration run holds the write lock (the migrator's own
        // per-migration transactions become savepoints inside it), so two
        // processes opening a fresh file cannot both apply migration 1.
        // Consequence for future migrations: they always run inside this
        // transaction, so `PRAGMA foreign_keys = OFF` (the usual table-rebuild
        // recipe) has no effect there; use `PRAGMA defer_foreign_keys = ON`.
        let mut conn = pool.acquire().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        migrator
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        tx.commit().await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        if mode != "wal" && mode != "memory" {
            tracing::warn!(
                journal_mode = %mode,
                "SQLite database is not in WAL mode; the CLI and the server will block each other"
            );
        }
    }
    Ok(pool)
}

/// True if exactly the migrations of `migrator` are recorded as applied,
/// with the same checksums (read without taking the write lock). Any doubt,
/// including a migration this build does not know (a database written by a
/// newer version), returns false: the migrator then runs, under the lock, and
/// refuses such a database precisely.
async fn migrations_applied(pool: &SqlitePool, migrator: &Migrator) -> bool {
    let rows: Vec<(i64, Vec<u8>)> =
        match sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            Err(_) => return false,
        };
    let known = |v: i64| migrator.iter().any(|m| m.version == v);
    rows.iter().all(|(v, _)| known(*v))
        && migrator.iter().all(|m| {
            rows.iter()
                .any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum)
        })
}

/// Creates the database file (and missing parent directories) readable by its
/// owner only, before SQLite opens it: the store holds HA1 values, which are
/// password-equivalent for digest authentication, and the archive holds message
/// content. SQLite gives the `-wal` and `-shm` files the permissions of the main
/// file. An existing file is left as it is.
fn create_private_file(path: &Path) -> StoreResult<()> {
    let unavailable = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {what} {}: {e}", p.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(parent)
            .map_err(|e| unavailable("directory", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable("database file", path, e)),
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// Read from the database on every call, so it reflects commits by other
    /// processes as soon as they are made.
    async fn change_seq(&self) -> StoreResult<i64> {
        sqlx::query_scalar::<_, i64>("SELECT value FROM meta WHERE name = 'change_seq'")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read change sequence"))?
            .ok_or_else(|| StoreError::Backend("change sequence row is missing".to_owned()))
    }

    /// Takes the write lock and writes one row, so a read-only file, a full disk
    /// or a lock held for longer than the busy timeout all show up here.
    async fn health(&self) -> StoreResult<()> {
        let what = "health check";
        let mut tx = self.begin_write(what).await?;
        let done = sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'health_probe'")
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Backend(
                "health probe row is missing".to_owned(),
            ));
        }
        tx.commit().await.map_err(db(what))
    }
}

/// Bumps the change sequence inside the caller's transaction.
async fn bump_change_seq(conn: &mut SqliteConnection) -> StoreResult<()> {
    let done = sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'change_seq'")
        .execute(conn)
        .await
        .map_err(db("bump change sequence"))?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Backend(
            "change sequence row is missing".to_owned(),
        ))
    }
}

/// Whether a user row exists (inside the caller's transaction).
async fn user_exists(conn: &mut SqliteConnection, address: &str) -> StoreResult<bool> {
    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE address = ?")
        .bind(address)
        .fetch_one(conn)
        .await
        .map_err(db("look up user"))?;
    Ok(n > 0)
}

/// Reads one column, reporting a type mismatch as corrupt data.
fn col<'r, T>(row: &'r SqliteRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Backend(format!("reading column {name}: {e}")))
}

/// Converts a stored integer back to the narrower type of its record field.
fn narrow<T: TryFrom<i64>>(value: i64, name: &str) -> StoreResult<T> {
    T::try_from(value)
        .map_err(|_| StoreError::Backend(format!("column {name} holds out-of-range value")))
}

/// Error mapper for `map_err`, naming the operation that failed.
fn db(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| classify(what, e)
}

/// The SQLite primary result code of a database error, if it is one.
fn primary_code(err: &sqlx::Error) -> Option<i32> {
    match err {
        sqlx::Error::Database(e) => e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        sqlx::Error::Migrate(m) => match m.as_ref() {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => primary_code(e),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the error is another connection holding a lock.
fn is_busy(err: &sqlx::Error) -> bool {
    matches!(primary_code(err), Some(SQLITE_BUSY | SQLITE_LOCKED))
}

/// Maps a sqlx error to the store's error kinds.
///
/// Messages name the operation and carry SQLite's own description (which names
/// tables and columns but never values), so no credential can leak through them.
fn classify(what: &str, err: sqlx::Error) -> StoreError {
    let mapped = match &err {
        sqlx::Error::Database(e) => match e.kind() {
            ErrorKind::UniqueViolation => StoreError::Conflict(format!("{what}: already exists")),
            ErrorKind::ForeignKeyViolation => StoreError::Conflict(format!(
                "{what}: refers to a missing row or is still referenced"
            )),
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                StoreError::Backend(format!("{what}: value rejected by the schema"))
            }
            _ if is_unavailable_code(primary_code(&err)) => {
                StoreError::Unavailable(format!("{what}: {}", e.message()))
            }
            _ => StoreError::Backend(format!("{what}: {}", e.message())),
        },
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("{what}: I/O error: {e}")),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable(format!("{what}: timed out waiting for a connection"))
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable(format!("{what}: the store is closed")),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(format!("{what}: the database worker stopped"))
        }
        sqlx::Error::Migrate(m) => match m.as_ref() {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => {
                if is_unavailable_code(primary_code(inner)) {
                    StoreError::Unavailable(format!("{what}: migrating: {inner}"))
                } else {
                    StoreError::Backend(format!("{what}: migrating: {inner}"))
                }
            }
            MigrateError::VersionMissing(v) => StoreError::Backend(format!(
                "{what}: the database has migration {v}, unknown to this build \
                 (written by a newer Switchboard?)"
            )),
            other => StoreError::Backend(format!("{what}: migrating: {other}")),
        },
        other => StoreError::Backend(format!("{what}: {other}")),
    };
    if matches!(mapped, StoreError::Unavailable(_)) {
        tracing::warn!(error = %mapped, "SQLite store unavailable");
    }
    mapped
}

/// Whether a primary code means "the database cannot be used right now"; retrying
/// later may work, so callers answer 503 rather than 500.
fn is_unavailable_code(code: Option<i32>) -> bool {
    matches!(
        code,
        Some(
            SQLITE_BUSY
                | SQLITE_LOCKED
                | SQLITE_NOMEM
                | SQLITE_READONLY
                | SQLITE_IOERR
                | SQLITE_FULL
                | SQLITE_CANTOPEN
                | SQLITE_PROTOCOL
                | SQLITE_NOLFS
        )
    )
}
