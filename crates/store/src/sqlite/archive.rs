//! The compliance archive on SQLite: [`SqliteArchive`].
//!
//! The archive is a database file of its own (typically `archive.db` next to
//! the store), opened like the store (WAL, `BEGIN IMMEDIATE` writes, owner-only
//! file, the same error classification) but with its own migrations
//! (`migrations/sqlite-archive`) and these differences:
//! - [`append_archive`](Archive::append_archive) commits with `synchronous =
//!   FULL`: an archived message is on disk, power loss included, before the
//!   server delivers it in critical mode (and before a replayed spool is
//!   emptied); [`append_archive_unsynced`](Archive::append_archive_unsynced)
//!   and every other write commit with `synchronous = NORMAL` (a crash of the
//!   process loses nothing committed; a power loss may lose the newest
//!   commits until the next durable one or checkpoint);
//! - appends go through one connection kept aside for them, so its page cache
//!   stays valid between appends; the connections keep temporary data (the
//!   statement journal) in memory, have a 16 MiB page cache and checkpoint the
//!   WAL every 16,000 pages (64 MiB) instead of 1,000, so that index pages
//!   changed by every batch are copied into the database file less often;
//! - the busy timeout can be shortened ([`SqliteArchive::open_with_busy_timeout`]),
//!   so that in critical mode an archive that is locked or unwritable refuses
//!   IM within about a second instead of holding every message for five.
//!
//! Schema (see the migrations for the details):
//! - `archive_records`: the chain; `seq` is the rowid, so seq order is the
//!   table's own order; an index by time; each record names its `thread`;
//! - `archive_party_sets (set_id, members)` and `archive_set_members`: the
//!   distinct sets of parties (sender and participants, sorted) of records and
//!   who is in each;
//! - `archive_threads (thread, conversation, set_id)`: one per conversation
//!   and party set (a 1:1 conversation; a conference between membership
//!   changes);
//! - `archive_thread_index`: an external-content FTS5 index (rowids only) of
//!   the records' thread numbers. "Records of conversation C" and "records X
//!   sent or received" are the records of C's threads, of the threads of X's
//!   sets: one FTS5 query. Unlike a B-tree index keyed by conversation, which
//!   every record modified at a scattered page, FTS5 writes the thread
//!   numbers of a batch as one small segment;
//! - `archive_conversations` and `archive_conversation_parties`: per
//!   conversation its span, record count and everyone in it, maintained on
//!   append and purge, for `with` searches, summaries and the mail job;
//! - `archive_text`: an external-content FTS5 index over `text`;
//! - both FTS5 indexes are written by the backend, one statement each per
//!   appended batch (one segment per batch; `archive_meta.backend_indexes`
//!   is 1 meanwhile, inside its transaction), and by a trigger for rows
//!   inserted by other means (a forgery with the sqlite3 shell shows in
//!   searches like any record); triggers keep them in step when indexed
//!   records are deleted or edited;
//! - `archive_anchor`: the `(seq, hash)` the remaining chain starts after;
//! - `archive_mailed (conversation, mailbox)`: transcripts delivered.
//!
//! Only the records and the anchor are evidence; everything else is derived
//! from the records and can be rebuilt from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite};

use super::{BUSY_TIMEOUT, begin_read, begin_write, col, db, narrow, open_file_with, open_memory};
use crate::archive::{
    Archive, ArchiveQuery, ArchiveRecord, ConversationSummary, NewArchiveRecord, archive_limit,
    chain_hash,
};
use crate::{StoreError, StoreResult};
use tokio::sync::Mutex;

/// The archive's own migrations, separate from the store's.
static ARCHIVE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite-archive");

/// The columns `record_from_row` reads, as a literal for `concat!`.
macro_rules! record_columns {
    () => {
        "seq, conversation, kind, at_ms, sender, participants, content_type, body, text, \
         outcome, external, prev_hash, hash"
    };
}

/// Per-connection settings of the archive (see the module documentation).
const ARCHIVE_PRAGMAS: [(&str, &str); 3] = [
    ("temp_store", "MEMORY"),
    ("cache_size", "-16384"),
    ("wal_autocheckpoint", "16000"),
];

/// The SQLite compliance archive. Cheap to clone (clones share one connection
/// pool).
///
/// Several handles, in one process or several (server and CLI), may use one
/// file at once: every write takes the database write lock first, so appends
/// from all of them form one chain without gaps or forks.
#[derive(Debug, Clone)]
pub struct SqliteArchive {
    pool: SqlitePool,
    /// The connection appends use, kept out of the pool between them (for a
    /// file archive): its page cache stays valid from one append to the next,
    /// which the pool's rotation among idle connections would defeat (every
    /// connection's cache is discarded when another one has written).
    writer: Option<Arc<Mutex<Option<PoolConnection<Sqlite>>>>>,
    /// Threads already in the archive, so that appends look up only the
    /// `(conversation, party set)` pairs they have not seen.
    threads: Arc<std::sync::Mutex<ThreadCache>>,
}

/// The threads an archive handle has seen, valid for one purge generation:
/// threads (and sets) are only ever removed by a purge, which bumps
/// `archive_meta.purge_generation` (in whichever process it runs), and an
/// append that reads another generation starts the cache afresh.
#[derive(Debug, Default)]
struct ThreadCache {
    generation: i64,
    /// conversation -> party set key -> thread.
    threads: HashMap<String, HashMap<String, i64>>,
    len: usize,
}

/// Most threads a handle remembers; past that the cache starts afresh (a
/// 1:1 conversation gets a new id, so a new thread, after an hour of silence).
const THREAD_CACHE_MAX: usize = 100_000;

impl ThreadCache {
    fn get(&self, conversation: &str, members: &str) -> Option<i64> {
        self.threads.get(conversation)?.get(members).copied()
    }

    /// Remembers threads committed under `generation`.
    fn remember(&mut self, generation: i64, learned: Vec<(String, String, i64)>) {
        if generation != self.generation {
            return;
        }
        if self.len + learned.len() > THREAD_CACHE_MAX {
            self.threads.clear();
            self.len = 0;
        }
        for (conversation, members, thread) in learned {
            if self
                .threads
                .entry(conversation)
                .or_default()
                .insert(members, thread)
                .is_none()
            {
                self.len += 1;
            }
        }
    }

    /// Forgets everything if the archive's purge generation is not the one
    /// the cache was filled under.
    fn check(&mut self, generation: i64) {
        if generation != self.generation {
            self.threads.clear();
            self.len = 0;
            self.generation = generation;
        }
    }
}

impl SqliteArchive {
    /// Opens (creating it and its parent directory if missing, readable by its
    /// owner only) the archive database at `path` and brings its schema up to
    /// date, waiting up to 5 s for a lock held by another connection, like the
    /// store. `path` must not be the store's own file.
    ///
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened or
    /// written (permissions, disk full, held locked too long) and with
    /// [`StoreError::Backend`] when it is not an archive this build understands
    /// (corrupt, another kind of Switchboard database, or migrated by a newer
    /// version).
    pub async fn open(path: &Path) -> StoreResult<SqliteArchive> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// Like [`open`](Self::open), but every statement waits at most
    /// `busy_timeout` for a lock held by another connection before failing
    /// with [`StoreError::Unavailable`], and a call waits at most twice that for
    /// a free pooled connection. Critical mode opens the archive with about
    /// 1 s, so that IM is refused promptly when the archive cannot be written.
    /// Opening itself may retry a few times while another process holds the
    /// lock, so it can take several busy timeouts.
    pub async fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> StoreResult<SqliteArchive> {
        let pool = open_file_with(
            path,
            &ARCHIVE_MIGRATOR,
            busy_timeout,
            SqliteSynchronous::Normal,
            &ARCHIVE_PRAGMAS,
        )
        .await?;
        Ok(SqliteArchive {
            pool,
            writer: Some(Arc::new(Mutex::new(None))),
            threads: Arc::default(),
        })
    }

    /// Opens a private, empty in-memory archive, for tests of code built on
    /// the archive. Nothing is persisted and no other handle can see it.
    pub async fn open_in_memory() -> StoreResult<SqliteArchive> {
        let pool = open_memory(&ARCHIVE_MIGRATOR).await?;
        // One connection only: appends take it from the pool like every call.
        Ok(SqliteArchive {
            pool,
            writer: None,
            threads: Arc::default(),
        })
    }

    /// Closes every connection, waiting for them, so that the last one can
    /// checkpoint the WAL into the main file. Calls made through clones fail
    /// with [`StoreError::Unavailable`] afterwards.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.lock().await.take();
        }
        self.pool.close().await;
    }
}

/// Reads one stored record; a column that does not decode (a direct edit put
/// something else there) is a [`StoreError::Backend`] naming the record.
fn record_from_row(row: &SqliteRow) -> StoreResult<ArchiveRecord> {
    let seq: i64 = col(row, "seq")?;
    let named = |e: StoreError| StoreError::Backend(format!("archive record {seq}: {e}"));
    let participants: String = col(row, "participants").map_err(named)?;
    let participants: Vec<String> = serde_json::from_str(&participants).map_err(|e| {
        StoreError::Backend(format!(
            "archive record {seq}: participants are not a JSON list of strings: {e}"
        ))
    })?;
    Ok(ArchiveRecord {
        seq,
        record: NewArchiveRecord {
            conversation: col(row, "conversation").map_err(named)?,
            kind: col(row, "kind").map_err(named)?,
            at_ms: col(row, "at_ms").map_err(named)?,
            sender: col(row, "sender").map_err(named)?,
            participants,
            content_type: col(row, "content_type").map_err(named)?,
            body: col(row, "body").map_err(named)?,
            text: col(row, "text").map_err(named)?,
            outcome: col(row, "outcome").map_err(named)?,
            external: col(row, "external").map_err(named)?,
        },
        prev_hash: col(row, "prev_hash").map_err(named)?,
        hash: col(row, "hash").map_err(named)?,
    })
}

/// Turns the user's words into an FTS5 query that can only mean "all of these
/// words": each word becomes an FTS5 string (`"…"`, inner quotes doubled), and
/// strings side by side are ANDed. Nothing the user types can therefore act
/// as FTS5 syntax (`OR`, `NOT`, `NEAR(`, `*`, `^`, `:`, parentheses, quotes).
///
/// Words are separated by whitespace and control characters (FTS5 reads its
/// query as a C string, so a NUL must never reach it). A word without any
/// letter or digit is dropped: the tokenizer indexes none of its characters,
/// so it cannot narrow the search. Returns `None` when no word is left.
///
/// Inside a string the tokenizer still splits, so `don't` becomes the phrase
/// `don t`, matching the text "don't" (and "don t").
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The end of the chain inside the caller's transaction: the newest record,
/// or the anchor when retention removed every record (or none was written).
async fn chain_end(conn: &mut SqliteConnection) -> StoreResult<(i64, String)> {
    let what = "read the end of the archive chain";
    let head = sqlx::query("SELECT seq, hash FROM archive_records ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(what))?;
    match head {
        Some(row) => Ok((col(&row, "seq")?, col(&row, "hash")?)),
        None => read_anchor(conn).await,
    }
}

/// The anchor row inside the caller's transaction.
async fn read_anchor(conn: &mut SqliteConnection) -> StoreResult<(i64, String)> {
    let row = sqlx::query("SELECT seq, hash FROM archive_anchor WHERE id = 1")
        .fetch_optional(conn)
        .await
        .map_err(db("read the archive anchor"))?
        .ok_or_else(|| StoreError::Backend("archive anchor row is missing".to_owned()))?;
    Ok((col(&row, "seq")?, col(&row, "hash")?))
}

/// A record with its place in the chain, borrowed from the caller.
struct Chained<'a> {
    seq: i64,
    record: &'a NewArchiveRecord,
    participants_json: String,
    /// The key of its party set: see [`party_set_key`].
    members: String,
    prev_hash: String,
    hash: String,
}

/// The key of a record's party set (`archive_party_sets.members`): the JSON
/// array of its sender and participants, each once, sorted byte-wise.
fn party_set_key(r: &NewArchiveRecord) -> StoreResult<String> {
    let parties: BTreeSet<&str> = std::iter::once(r.sender.as_str())
        .chain(r.participants.iter().map(String::as_str))
        .collect();
    serde_json::to_string(&parties)
        .map_err(|e| StoreError::Backend(format!("append to archive: parties: {e}")))
}

/// Runs a multi-row statement, kept prepared in the connection's cache.
async fn execute_chunk(
    conn: &mut SqliteConnection,
    mut qb: QueryBuilder<Sqlite>,
    what: &str,
) -> StoreResult<()> {
    qb.build().execute(conn).await.map_err(db(what))?;
    Ok(())
}

/// JSON text of `value`, for statements that take a whole batch as one JSON
/// parameter (read with `json_each`), so that their SQL text, and thus their
/// prepared statement, is the same whatever the batch size.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("append to archive: {e}")))
}

/// Creates the party sets of `keys` that do not exist yet, with their member
/// rows, inside the caller's transaction.
async fn ensure_party_sets(conn: &mut SqliteConnection, keys: &BTreeSet<&str>) -> StoreResult<()> {
    let what = "append to archive";
    let created: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO archive_party_sets (members) SELECT value FROM json_each(?1) WHERE 1 \
         ON CONFLICT (members) DO NOTHING RETURNING set_id",
    )
    .bind(json(keys)?)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(what))?;
    if !created.is_empty() {
        sqlx::query(
            "INSERT INTO archive_set_members (address, set_id) \
             SELECT j.value, s.set_id FROM json_each(?1) i \
             JOIN archive_party_sets s ON s.set_id = i.value, json_each(s.members) j WHERE 1 \
             ON CONFLICT (address, set_id) DO NOTHING",
        )
        .bind(json(&created)?)
        .execute(&mut *conn)
        .await
        .map_err(db(what))?;
    }
    Ok(())
}

/// Row counts of the multi-row record `INSERT`s: a batch is cut into chunks
/// of these sizes (largest first), so that every statement's SQL text is one
/// of five and stays prepared.
const RECORD_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// The thread of each `(conversation, party set key)` pair, creating the
/// threads that do not exist yet (their sets must exist) and adding their
/// members to their conversations' parties, inside the caller's transaction.
/// Returns the threads in the order of `pairs`.
async fn ensure_threads(
    conn: &mut SqliteConnection,
    pairs: &[(&str, &str)],
) -> StoreResult<Vec<i64>> {
    let what = "append to archive";
    let pairs_json = json(pairs)?;
    let created: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO archive_threads (conversation, set_id) \
         SELECT p.value ->> 0, s.set_id FROM json_each(?1) p \
         JOIN archive_party_sets s ON s.members = p.value ->> 1 WHERE 1 \
         ON CONFLICT (conversation, set_id) DO NOTHING RETURNING set_id, conversation",
    )
    .bind(&pairs_json)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(what))?;
    if !created.is_empty() {
        // A new thread brings its set's members into the conversation (whose
        // row the caller has written already).
        sqlx::query(
            "INSERT INTO archive_conversation_parties (conversation, address) \
             SELECT p.value ->> 1, j.value FROM json_each(?1) p \
             JOIN archive_party_sets s ON s.set_id = p.value ->> 0, json_each(s.members) j \
             WHERE 1 ON CONFLICT (conversation, address) DO NOTHING",
        )
        .bind(json(&created)?)
        .execute(&mut *conn)
        .await
        .map_err(db(what))?;
    }
    // One row: the thread of each pair, by the pair's position.
    let found: String = sqlx::query_scalar(
        "SELECT json_group_object(p.key, t.thread) FROM json_each(?1) p \
         JOIN archive_party_sets s ON s.members = p.value ->> 1 \
         JOIN archive_threads t ON t.conversation = p.value ->> 0 AND t.set_id = s.set_id",
    )
    .bind(&pairs_json)
    .fetch_one(&mut *conn)
    .await
    .map_err(db(what))?;
    let found: std::collections::HashMap<usize, i64> = serde_json::from_str(&found)
        .map_err(|e| StoreError::Backend(format!("{what}: threads: {e}")))?;
    (0..pairs.len())
        .map(|i| {
            found.get(&i).copied().ok_or_else(|| {
                StoreError::Backend(format!("{what}: a thread was not found after its insert"))
            })
        })
        .collect()
}

/// Pages one compaction step writes at most (FTS5 `merge`): a few MiB, tens
/// of milliseconds holding the write lock.
const COMPACT_STEP_PAGES: u32 = 500;

/// Steps per index and compaction at most, so that one run ends even if the
/// index keeps changing under it (about 8 GiB of merged pages).
const COMPACT_MAX_STEPS: u32 = 4_000;

/// Pause before each compaction step, for other writers.
const COMPACT_PAUSE: Duration = Duration::from_millis(20);

/// Inserts chained records with their threads (and the party sets and
/// threads that are new), their full text and thread numbers, and their
/// conversations' rows, inside the caller's transaction. The conversations'
/// rows and the indexes are written from the records just inserted (`seq`
/// from the first to the last of `rows`), one statement each per batch.
async fn insert_chained(
    conn: &mut SqliteConnection,
    rows: &[Chained<'_>],
    known: &[Option<i64>],
) -> StoreResult<Vec<(String, String, i64)>> {
    let what = "append to archive";
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    // The conversations' rows first: new threads add parties to them.
    let mut spans: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for row in rows {
        let at = row.record.at_ms;
        spans
            .entry(row.record.conversation.as_str())
            .and_modify(|(first, last, n)| {
                *first = (*first).min(at);
                *last = (*last).max(at);
                *n += 1;
            })
            .or_insert((at, at, 1));
    }
    let spans: Vec<(&str, i64, i64, i64)> = spans
        .into_iter()
        .map(|(c, (first, last, n))| (c, first, last, n))
        .collect();
    sqlx::query(
        "INSERT INTO archive_conversations (conversation, first_ms, last_ms, records) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1) WHERE 1 \
         ON CONFLICT (conversation) DO UPDATE SET \
         first_ms = min(first_ms, excluded.first_ms), \
         last_ms = max(last_ms, excluded.last_ms), \
         records = records + excluded.records",
    )
    .bind(json(&spans)?)
    .execute(&mut *conn)
    .await
    .map_err(db(what))?;

    // The threads the caller did not know, with their sets if new.
    let mut pair_index: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let row_pairs: Vec<Option<usize>> = rows
        .iter()
        .zip(known)
        .map(|(row, known)| match known {
            Some(_) => None,
            None => {
                let pair = (row.record.conversation.as_str(), row.members.as_str());
                Some(*pair_index.entry(pair).or_insert_with(|| {
                    pairs.push(pair);
                    pairs.len() - 1
                }))
            }
        })
        .collect();
    let looked_up = if pairs.is_empty() {
        Vec::new()
    } else {
        let keys: BTreeSet<&str> = pairs.iter().map(|(_, members)| *members).collect();
        ensure_party_sets(conn, &keys).await?;
        ensure_threads(conn, &pairs).await?
    };
    let learned: Vec<(String, String, i64)> = pairs
        .iter()
        .zip(&looked_up)
        .map(|((c, m), t)| ((*c).to_owned(), (*m).to_owned(), *t))
        .collect();
    let threads: Vec<i64> = known
        .iter()
        .zip(&row_pairs)
        .map(|(known, pair)| match (known, pair) {
            (Some(thread), _) => *thread,
            (None, Some(pair)) => looked_up[*pair],
            (None, None) => 0,
        })
        .collect();

    // The rows are indexed below, one statement per index: the insert
    // trigger (for rows inserted by other means) must not index them too.
    set_backend_indexes(conn, 1).await?;
    let mut rest: Vec<(&Chained<'_>, i64)> = rows.iter().zip(threads).collect();
    let mut rest: &mut [(&Chained<'_>, i64)] = &mut rest;
    while !rest.is_empty() {
        let size = RECORD_CHUNKS
            .into_iter()
            .find(|size| *size <= rest.len())
            .unwrap_or(1);
        let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(size);
        rest = tail;
        let mut qb = QueryBuilder::<Sqlite>::new(concat!(
            "INSERT OR FAIL INTO archive_records (",
            record_columns!(),
            ", thread) "
        ));
        qb.push_values(chunk.iter(), |mut b, (row, thread)| {
            let r = row.record;
            b.push_bind(row.seq)
                .push_bind(r.conversation.clone())
                .push_bind(r.kind.clone())
                .push_bind(r.at_ms)
                .push_bind(r.sender.clone())
                .push_bind(row.participants_json.clone())
                .push_bind(r.content_type.clone())
                .push_bind(r.body.clone())
                .push_bind(r.text.clone())
                .push_bind(r.outcome.clone())
                .push_bind(r.external)
                .push_bind(row.prev_hash.clone())
                .push_bind(row.hash.clone())
                .push_bind(*thread);
        });
        execute_chunk(conn, qb, what).await?;
    }

    // Their full text and thread numbers, one statement each: one new FTS5
    // segment per index and batch.
    for sql in [
        "INSERT INTO archive_text (rowid, text) SELECT seq, text FROM archive_records \
         WHERE seq BETWEEN ?1 AND ?2",
        "INSERT INTO archive_thread_index (rowid, thread) SELECT seq, thread \
         FROM archive_records WHERE seq BETWEEN ?1 AND ?2",
    ] {
        sqlx::query(sql)
            .bind(first.seq)
            .bind(last.seq)
            .execute(&mut *conn)
            .await
            .map_err(db(what))?;
    }
    set_backend_indexes(conn, 0).await?;
    Ok(learned)
}

/// Sets `archive_meta.backend_indexes` inside the caller's transaction: 1
/// while the backend inserts records it indexes itself, 0 (the only value
/// ever committed) otherwise.
async fn set_backend_indexes(conn: &mut SqliteConnection, value: i64) -> StoreResult<()> {
    let done = sqlx::query("UPDATE archive_meta SET value = ? WHERE name = 'backend_indexes'")
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(db("append to archive"))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Backend(
            "archive_meta row backend_indexes is missing".to_owned(),
        ));
    }
    Ok(())
}

/// The threads a search is restricted to (`Some`, possibly empty: nothing can
/// match), or `None` when it names no user, `with` or conversation: the
/// intersection of the threads of the user's party sets, of the conversations
/// `with` is a party of, and of the conversation.
async fn search_threads(
    conn: &mut SqliteConnection,
    q: &ArchiveQuery,
) -> StoreResult<Option<Vec<i64>>> {
    let mut parts: Vec<(&str, &str)> = Vec::new();
    if let Some(user) = &q.user {
        parts.push((
            "SELECT t.thread FROM archive_set_members m \
             JOIN archive_threads t ON t.set_id = m.set_id WHERE m.address = ?",
            user,
        ));
    }
    if let Some(with) = &q.with {
        parts.push((
            "SELECT t.thread FROM archive_conversation_parties p \
             JOIN archive_threads t ON t.conversation = p.conversation WHERE p.address = ?",
            with,
        ));
    }
    if let Some(conversation) = &q.conversation {
        parts.push((
            "SELECT thread FROM archive_threads WHERE conversation = ?",
            conversation,
        ));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let sql = parts
        .iter()
        .map(|(sql, _)| *sql)
        .collect::<Vec<_>>()
        .join(" INTERSECT ");
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
    for (_, value) in &parts {
        query = query.bind(*value);
    }
    let threads: Vec<i64> = query
        .fetch_all(&mut *conn)
        .await
        .map_err(db("search archive"))?;
    Ok(Some(threads))
}

/// The FTS5 query matching records of any of `threads` (thread numbers are
/// single tokens of `archive_thread_index`).
fn thread_match(threads: &[i64]) -> String {
    let mut out = String::with_capacity(threads.len() * 10);
    for (i, t) in threads.iter().enumerate() {
        if i > 0 {
            out.push_str(" OR ");
        }
        out.push('"');
        out.push_str(&t.to_string());
        out.push('"');
    }
    out
}

/// The condition "this conversation (`c`, a row of `archive_conversations`)
/// has a participant whose mailbox has not received it since its last record".
macro_rules! not_fully_mailed {
    () => {
        "EXISTS (SELECT 1 FROM archive_conversation_parties p \
                 WHERE p.conversation = c.conversation \
                 AND NOT EXISTS (SELECT 1 FROM archive_mailed m \
                                 WHERE m.conversation = p.conversation \
                                 AND m.mailbox = p.address \
                                 AND m.at_ms >= c.last_ms))"
    };
}

/// The summary of one conversation inside the caller's transaction.
async fn summary_in(
    conn: &mut SqliteConnection,
    conversation: &str,
) -> StoreResult<Option<ConversationSummary>> {
    let what = "read archive conversation";
    let Some(row) = sqlx::query(
        "SELECT conversation, first_ms, last_ms, records FROM archive_conversations \
         WHERE conversation = ?",
    )
    .bind(conversation)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db(what))?
    else {
        return Ok(None);
    };
    let participants = sqlx::query_scalar::<_, String>(
        "SELECT address FROM archive_conversation_parties WHERE conversation = ? ORDER BY address",
    )
    .bind(conversation)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(what))?;
    Ok(Some(ConversationSummary {
        conversation: col(&row, "conversation")?,
        first_ms: col(&row, "first_ms")?,
        last_ms: col(&row, "last_ms")?,
        participants,
        records: narrow(col::<i64>(&row, "records")?, "records")?,
    }))
}

impl SqliteArchive {
    /// Appends `records` in one `BEGIN IMMEDIATE` transaction; with `durable`
    /// the commit is made with `synchronous = FULL` (the WAL is flushed to
    /// disk before it returns), otherwise with the pool's `NORMAL`.
    async fn append(&self, records: &[NewArchiveRecord], durable: bool) -> StoreResult<Vec<i64>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let what = "append to archive";
        let Some(writer) = &self.writer else {
            let mut conn = self.pool.acquire().await.map_err(db(what))?;
            let (result, reusable) = append_on(&mut conn, records, durable, &self.threads).await;
            if !reusable {
                conn.close_on_drop();
            }
            return result;
        };
        let mut slot = writer.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(db(what))?,
        };
        let (result, reusable) = append_on(&mut conn, records, durable, &self.threads).await;
        if !reusable {
            // Left at FULL: only slower, but do not keep or pool it.
            conn.close_on_drop();
        } else if result.is_ok() {
            *slot = Some(conn);
        }
        // After a failure the connection goes back to the pool; the next
        // append takes one from there.
        result
    }
}

/// Appends on `conn`; with `durable` the commit is made with `synchronous =
/// FULL`, otherwise with the connection's `NORMAL`. Returns, with the result,
/// whether the connection is fit to be used again (it is not when it could
/// not be set back to `NORMAL`).
async fn append_on(
    conn: &mut SqliteConnection,
    records: &[NewArchiveRecord],
    durable: bool,
    cache: &std::sync::Mutex<ThreadCache>,
) -> (StoreResult<Vec<i64>>, bool) {
    let what = "append to archive";
    if !durable {
        return (append_in(conn, records, cache).await, true);
    }
    if let Err(e) = sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await
    {
        return (Err(db(what)(e)), true);
    }
    let result = append_in(conn, records, cache).await;
    let restored = sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await;
    (result, restored.is_ok())
}

/// Appends `records` after the end of the chain in one `BEGIN IMMEDIATE`
/// transaction on `conn`, looking threads up in `cache` first.
async fn append_in(
    conn: &mut SqliteConnection,
    records: &[NewArchiveRecord],
    cache: &std::sync::Mutex<ThreadCache>,
) -> StoreResult<Vec<i64>> {
    let what = "append to archive";
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db(what))?;
    let (mut seq, mut prev_hash) = chain_end(&mut tx).await?;
    let generation: i64 =
        sqlx::query_scalar("SELECT value FROM archive_meta WHERE name = 'purge_generation'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(what))?
            .unwrap_or(0);
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        seq = seq
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("archive sequence exhausted".to_owned()))?;
        let hash = chain_hash(&prev_hash, seq, record);
        let participants_json = serde_json::to_string(&record.participants)
            .map_err(|e| StoreError::Backend(format!("{what}: participants: {e}")))?;
        rows.push(Chained {
            seq,
            record,
            participants_json,
            members: party_set_key(record)?,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    let known: Vec<Option<i64>> = {
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.check(generation);
        rows.iter()
            .map(|row| cache.get(&row.record.conversation, &row.members))
            .collect()
    };
    let learned = insert_chained(&mut tx, &rows, &known).await?;
    tx.commit().await.map_err(db(what))?;
    if !learned.is_empty() {
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remember(generation, learned);
    }
    Ok(rows.iter().map(|r| r.seq).collect())
}

/// After records of `conversation` were removed, inside the caller's
/// transaction: its threads without records go; without any thread left the
/// conversation goes (its parties by cascade, its mailbox marks explicitly);
/// otherwise its span, count and parties are recomputed from what remains.
async fn recount_conversation(conn: &mut SqliteConnection, conversation: &str) -> StoreResult<()> {
    let what = "purge archive";
    let threads: Vec<i64> =
        sqlx::query_scalar("SELECT thread FROM archive_threads WHERE conversation = ?")
            .bind(conversation)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(what))?;
    let remaining = if threads.is_empty() {
        Vec::new()
    } else {
        sqlx::query(
            "SELECT thread, count(*) AS n, min(at_ms) AS first_ms, max(at_ms) AS last_ms \
             FROM archive_records WHERE seq IN (SELECT rowid FROM archive_thread_index \
             WHERE archive_thread_index MATCH ?) GROUP BY thread",
        )
        .bind(thread_match(&threads))
        .fetch_all(&mut *conn)
        .await
        .map_err(db(what))?
    };
    let mut kept = BTreeSet::new();
    let (mut records, mut first_ms, mut last_ms) = (0i64, i64::MAX, i64::MIN);
    for row in &remaining {
        kept.insert(col::<i64>(row, "thread")?);
        records += col::<i64>(row, "n")?;
        first_ms = first_ms.min(col(row, "first_ms")?);
        last_ms = last_ms.max(col(row, "last_ms")?);
    }
    let gone: Vec<i64> = threads.into_iter().filter(|t| !kept.contains(t)).collect();
    if !gone.is_empty() {
        sqlx::query("DELETE FROM archive_threads WHERE thread IN (SELECT value FROM json_each(?))")
            .bind(json(&gone)?)
            .execute(&mut *conn)
            .await
            .map_err(db(what))?;
    }
    if records == 0 {
        for sql in [
            "DELETE FROM archive_mailed WHERE conversation = ?",
            "DELETE FROM archive_conversations WHERE conversation = ?",
        ] {
            sqlx::query(sql)
                .bind(conversation)
                .execute(&mut *conn)
                .await
                .map_err(db(what))?;
        }
        return Ok(());
    }
    sqlx::query(
        "UPDATE archive_conversations SET first_ms = ?, last_ms = ?, records = ? \
         WHERE conversation = ?",
    )
    .bind(first_ms)
    .bind(last_ms)
    .bind(records)
    .bind(conversation)
    .execute(&mut *conn)
    .await
    .map_err(db(what))?;
    sqlx::query(
        "DELETE FROM archive_conversation_parties WHERE conversation = ?1 \
         AND NOT EXISTS (SELECT 1 FROM archive_threads t \
                         JOIN archive_set_members m ON m.set_id = t.set_id \
                         WHERE t.conversation = ?1 \
                         AND m.address = archive_conversation_parties.address)",
    )
    .bind(conversation)
    .execute(&mut *conn)
    .await
    .map_err(db(what))?;
    Ok(())
}

/// The SQLite archive.
///
/// - Appends are one `BEGIN IMMEDIATE` transaction: the head is read, each
///   record gets the next `seq` and its [`chain_hash`], and the records, their
///   party sets and threads, their conversations' rows and their index
///   entries are written; all or nothing. An empty batch writes nothing.
/// - Searches and ranges return records in `seq` order (oldest first), at most
///   [`archive_limit`]`(limit)` of them.
/// - "Participants" of a conversation are the senders and participants of its
///   remaining records: retention that removes someone's last record there
///   removes them from it.
/// - Text comparisons (addresses, conversations) are exact and byte-wise.
#[async_trait]
impl Archive for SqliteArchive {
    /// Appends `records` after the current end of the chain (the newest
    /// record, or the anchor when retention removed them all), atomically;
    /// returns their `seq`s in the order given.
    async fn append_archive(&self, records: &[NewArchiveRecord]) -> StoreResult<Vec<i64>> {
        self.append(records, true).await
    }

    /// Like `append_archive`, committed with `synchronous = NORMAL`: the WAL
    /// is not flushed to disk at each commit.
    async fn append_archive_unsynced(&self, records: &[NewArchiveRecord]) -> StoreResult<Vec<i64>> {
        self.append(records, false).await
    }

    /// Every given field narrows the result (AND):
    /// - `user`: records whose sender or one of whose participants is `user`;
    /// - `with`: records of conversations in which `with` is a party; together
    ///   with `user` this means conversations where both are parties, and only
    ///   the records `user` sent or received there;
    /// - `since_ms` / `until_ms`: `since_ms <= at_ms < until_ms`;
    /// - `text`: every word must occur in the record's text (case- and
    ///   accent-insensitive whole words; words are quoted so they are never
    ///   FTS5 syntax, see `fts_query`); a text without any letter or digit
    ///   matches no record;
    /// - `conversation`: exactly that conversation;
    /// - `after_seq`: records after it (paging: pass the last `seq` received).
    async fn search_archive(&self, q: &ArchiveQuery) -> StoreResult<Vec<ArchiveRecord>> {
        let what = "search archive";
        let fts = match q.text.as_deref() {
            Some(text) => match fts_query(text) {
                Some(query) => Some(query),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let mut tx = begin_read(&self.pool, what).await?;
        let threads = search_threads(&mut tx, q).await?;
        if threads.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            record_columns!(),
            " FROM archive_records WHERE 1 = 1"
        ));
        if let Some(threads) = threads {
            qb.push(
                " AND seq IN (SELECT rowid FROM archive_thread_index \
                 WHERE archive_thread_index MATCH ",
            )
            .push_bind(thread_match(&threads))
            .push(")");
        }
        if let Some(since) = q.since_ms {
            qb.push(" AND at_ms >= ").push_bind(since);
        }
        if let Some(until) = q.until_ms {
            qb.push(" AND at_ms < ").push_bind(until);
        }
        if let Some(fts) = fts {
            qb.push(" AND seq IN (SELECT rowid FROM archive_text WHERE archive_text MATCH ")
                .push_bind(fts)
                .push(")");
        }
        if let Some(conversation) = &q.conversation {
            qb.push(" AND conversation = ")
                .push_bind(conversation.clone());
        }
        if let Some(after) = q.after_seq {
            qb.push(" AND seq > ").push_bind(after);
        }
        qb.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(archive_limit(q.limit)));
        let rows = qb.build().fetch_all(&mut *tx).await.map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records with `seq > after_seq` in `seq` order; pass `0` (or below) to
    /// read from the start, whatever the anchor says, so that a record forged
    /// below the anchor is seen by verification too.
    async fn archive_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ArchiveRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM archive_records WHERE seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(after_seq)
        .bind(i64::from(archive_limit(limit)))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read archive range"))?;
        rows.iter().map(record_from_row).collect()
    }

    /// The stored anchor: `(0, GENESIS)` (see [`crate::archive::GENESIS`])
    /// until retention first removes records.
    async fn archive_anchor(&self) -> StoreResult<(i64, String)> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("read the archive anchor"))?;
        read_anchor(&mut conn).await
    }

    /// The newest record's `(seq, hash)`; `None` when the archive holds no
    /// record (never written, or everything purged: then the chain continues
    /// from [`archive_anchor`](Archive::archive_anchor)).
    async fn archive_head(&self) -> StoreResult<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM archive_records ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read the archive head"))?;
        row.map(|row| Ok((col(&row, "seq")?, col(&row, "hash")?)))
            .transpose()
    }

    /// In one `BEGIN IMMEDIATE` transaction: finds the first record (lowest
    /// `seq`) that must stay, because `at_ms >= before_ms` or, with
    /// `only_mailed`, because some participant of its conversation has no
    /// mailbox mark since the conversation's last record (see
    /// [`conversations_to_mail`](Archive::conversations_to_mail)); deletes
    /// every record before it (all of them if none must stay), with their
    /// party and full-text rows; sets the anchor to the last deleted record;
    /// and updates the conversations that lost records (a conversation left
    /// without records disappears, with its mailbox marks). Records after a
    /// record that must stay are kept even if old: only a prefix can go, so
    /// the rest of the chain still verifies from the anchor.
    async fn purge_archive(&self, before_ms: i64, only_mailed: bool) -> StoreResult<u64> {
        let what = "purge archive";
        let mut tx = begin_write(&self.pool, what).await?;
        let keep_from: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT r.seq FROM archive_records r WHERE r.at_ms >= ? OR (? AND EXISTS (\
               SELECT 1 FROM archive_conversations c \
               WHERE c.conversation = r.conversation AND ",
            not_fully_mailed!(),
            ")) ORDER BY r.seq LIMIT 1"
        ))
        .bind(before_ms)
        .bind(only_mailed)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(what))?;
        let keep_from = keep_from.unwrap_or(i64::MAX);
        let Some(last) = sqlx::query(
            "SELECT seq, hash FROM archive_records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(keep_from)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(what))?
        else {
            return Ok(0);
        };
        let (last_seq, last_hash): (i64, String) = (col(&last, "seq")?, col(&last, "hash")?);

        let touched: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT conversation FROM archive_records WHERE seq <= ?")
                .bind(last_seq)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(what))?;

        let removed = sqlx::query("DELETE FROM archive_records WHERE seq <= ?")
            .bind(last_seq)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?
            .rows_affected();
        let anchored = sqlx::query("UPDATE archive_anchor SET seq = ?, hash = ? WHERE id = 1")
            .bind(last_seq)
            .bind(&last_hash)
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        if anchored.rows_affected() != 1 {
            return Err(StoreError::Backend(
                "archive anchor row is missing".to_owned(),
            ));
        }
        for conversation in &touched {
            recount_conversation(&mut tx, conversation).await?;
        }
        // Threads and sets may go below: handles that remember threads must
        // look them up again.
        sqlx::query("UPDATE archive_meta SET value = value + 1 WHERE name = 'purge_generation'")
            .execute(&mut *tx)
            .await
            .map_err(db(what))?;
        // Party sets no remaining thread uses.
        let orphans = [
            "DELETE FROM archive_set_members WHERE (address, set_id) IN (\
             SELECT j.value, s.set_id FROM archive_party_sets s, json_each(s.members) j \
             WHERE NOT EXISTS (SELECT 1 FROM archive_threads t WHERE t.set_id = s.set_id))",
            "DELETE FROM archive_party_sets WHERE NOT EXISTS \
             (SELECT 1 FROM archive_threads t WHERE t.set_id = archive_party_sets.set_id)",
        ];
        for sql in orphans {
            sqlx::query(sql).execute(&mut *tx).await.map_err(db(what))?;
        }
        tx.commit().await.map_err(db(what))?;
        Ok(removed)
    }

    /// Merges the segments of both FTS5 indexes (each batch of appends
    /// writes one per index, and a search probes every segment for every
    /// term: a user's search asks the thread index for hundreds of terms) in
    /// steps of [`COMPACT_STEP_PAGES`] pages, one write transaction each.
    /// Each step holds this handle's append lock, which is fair: an append
    /// queued meanwhile goes before the next step, so it waits for one step
    /// at most; a pause between steps lets other processes' writers in too
    /// (SQLite's busy handler polls, and would rarely catch the lock free).
    /// FTS5's `merge` command with a negative size merges every segment
    /// whatever its level; a step that changes fewer than two rows means the
    /// index is one segment.
    async fn compact_archive_indexes(&self) -> StoreResult<u64> {
        let what = "compact archive indexes";
        let mut steps = 0;
        for merge in [
            "INSERT INTO archive_text (archive_text, rank) VALUES ('merge', ?)",
            "INSERT INTO archive_thread_index (archive_thread_index, rank) VALUES ('merge', ?)",
        ] {
            for _ in 0..COMPACT_MAX_STEPS {
                tokio::time::sleep(COMPACT_PAUSE).await;
                let _appends = match &self.writer {
                    Some(writer) => Some(writer.lock().await),
                    None => None,
                };
                let mut tx = begin_write(&self.pool, what).await?;
                let before: i64 = sqlx::query_scalar("SELECT total_changes()")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(what))?;
                sqlx::query(merge)
                    .bind(-i64::from(COMPACT_STEP_PAGES))
                    .execute(&mut *tx)
                    .await
                    .map_err(db(what))?;
                let after: i64 = sqlx::query_scalar("SELECT total_changes()")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(what))?;
                tx.commit().await.map_err(db(what))?;
                if after - before < 2 {
                    break;
                }
                steps += 1;
            }
        }
        Ok(steps)
    }

    /// Conversations whose last record has `at_ms < idle_before_ms` and in
    /// which some party (sender or participant of any remaining record, every
    /// address alike: the archive does not know which are archived users) has
    /// no [`mark_mailed`](Archive::mark_mailed) at or after the conversation's
    /// last record. A caller that will not deliver to some party (not an
    /// archived user, external) marks it anyway, or the conversation stays
    /// due and `purge_archive(_, true)` stops at it. Ordered by last record,
    /// then conversation; at most [`archive_limit`]`(limit)`.
    async fn conversations_to_mail(
        &self,
        idle_before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ConversationSummary>> {
        let what = "list archive conversations to mail";
        let mut tx = begin_read(&self.pool, what).await?;
        let due: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT c.conversation FROM archive_conversations c \
             WHERE c.last_ms < ? AND ",
            not_fully_mailed!(),
            " ORDER BY c.last_ms, c.conversation LIMIT ?"
        ))
        .bind(idle_before_ms)
        .bind(i64::from(archive_limit(limit)))
        .fetch_all(&mut *tx)
        .await
        .map_err(db(what))?;
        let mut summaries = Vec::with_capacity(due.len());
        for conversation in &due {
            if let Some(summary) = summary_in(&mut tx, conversation).await? {
                summaries.push(summary);
            }
        }
        tx.commit().await.map_err(db(what))?;
        Ok(summaries)
    }

    /// From the conversation's remaining records: first and last `at_ms`,
    /// record count and parties sorted byte-wise.
    async fn conversation_summary(
        &self,
        conversation: &str,
    ) -> StoreResult<Option<ConversationSummary>> {
        let what = "read archive conversation";
        let mut tx = begin_read(&self.pool, what).await?;
        let summary = summary_in(&mut tx, conversation).await?;
        tx.commit().await.map_err(db(what))?;
        Ok(summary)
    }

    /// Upserts the mark; marking the same pair again keeps the later `at_ms`,
    /// so repeating a call changes nothing. The conversation need not exist.
    async fn mark_mailed(&self, conversation: &str, mailbox: &str, at_ms: i64) -> StoreResult<()> {
        let what = "mark archive conversation mailed";
        let mut tx = begin_write(&self.pool, what).await?;
        sqlx::query(
            "INSERT INTO archive_mailed (conversation, mailbox, at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (conversation, mailbox) DO UPDATE SET at_ms = max(at_ms, excluded.at_ms)",
        )
        .bind(conversation)
        .bind(mailbox)
        .bind(at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(what))?;
        tx.commit().await.map_err(db(what))
    }

    /// Every mailbox marked for `conversation`, sorted byte-wise, whatever the
    /// time of its mark.
    async fn mailed(&self, conversation: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT mailbox FROM archive_mailed WHERE conversation = ? ORDER BY mailbox",
        )
        .bind(conversation)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read archive mailbox marks"))
    }

    /// Takes the write lock and writes (bumps a probe counter) and commits,
    /// with the archive's busy timeout: a read-only file, a full disk or a lock
    /// held by someone else for longer than the busy timeout all show up here
    /// as [`StoreError::Unavailable`].
    async fn archive_health(&self) -> StoreResult<()> {
        let what = "archive health check";
        let mut tx = begin_write(&self.pool, what).await?;
        let done =
            sqlx::query("UPDATE archive_meta SET value = value + 1 WHERE name = 'health_probe'")
                .execute(&mut *tx)
                .await
                .map_err(db(what))?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Backend(
                "archive health probe row is missing".to_owned(),
            ));
        }
        tx.commit().await.map_err(db(what))
    }
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn user_words_become_quoted_fts_strings() {
        assert_eq!(
            fts_query("budget review").as_deref(),
            Some(r#""budget" "review""#)
        );
        assert_eq!(
            fts_query(r#"a OR b* NEAR(x "y""#).as_deref(),
            Some(r#""a" "OR" "b*" "NEAR(x" """y""""#)
        );
        assert_eq!(
            fts_query("nul\0byte\ttab").as_deref(),
            Some(r#""nul" "byte" "tab""#)
        );
    }

    #[test]
    fn text_without_letters_or_digits_is_no_query() {
        assert_eq!(fts_query(""), None);
        assert_eq!(fts_query("  * \" () "), None);
        assert_eq!(fts_query("* budget -").as_deref(), Some(r#""budget""#));
    }
}
