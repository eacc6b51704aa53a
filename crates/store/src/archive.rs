//! The compliance archive: every archived instant message and conference
//! event, chained by hash so that any later edit, insertion or deletion shows,
//! with full-text search, retention and mail-store bookkeeping.
//!
//! The archive lives in its own database (a separate file for SQLite): it
//! grows large, has its own retention and backups, and critical mode must be
//! able to tell "the archive cannot be written" apart from the rest.

use crate::StoreResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How many records a search or range returns when asked for 0 (no limit given).
pub const DEFAULT_ARCHIVE_LIMIT: u32 = 1000;

/// The most records one search or range call returns: larger limits are cut to
/// this, so that one call cannot load the whole archive into memory.
pub const MAX_ARCHIVE_LIMIT: u32 = 100_000;

/// The limit a backend applies for a requested `limit`: 0 means
/// [`DEFAULT_ARCHIVE_LIMIT`], anything above [`MAX_ARCHIVE_LIMIT`] is cut to it.
pub fn archive_limit(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_ARCHIVE_LIMIT
    } else {
        limit.min(MAX_ARCHIVE_LIMIT)
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewArchiveRecord {
    /// The conversation (1:1 conversation id or conference id).
    pub conversation: String,
    /// `message`, `join` or `leave`.
    pub kind: String,
    pub at_ms: i64,
    /// The sender (or the person joining or leaving).
    pub sender: String,
    /// Recipients of a 1:1 message, or the participants of the conference at
    /// that moment.
    pub participants: Vec<String>,
    pub content_type: String,
    /// The body as sent. In JSON (exports, the spool) it is base64, which
    /// carries any bytes and is what eDiscovery tools expect.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
    /// The searchable text of the body (markup and wrappers removed).
    pub text: String,
    /// What became of a message: `delivered`, `stored` (offline), `failed 480`…
    pub outcome: String,
    /// A party outside the served domains took part.
    pub external: bool,
}

/// Serde helper: bytes as a base64 string.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// A stored record with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Position in the chain: 1, 2, 3… without gaps.
    pub seq: i64,
    #[serde(flatten)]
    pub record: NewArchiveRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of record `seq` chained after `prev_hash`: SHA-256 over an
/// unambiguous encoding of every field (lengths before variable parts).
pub fn chain_hash(prev_hash: &str, seq: i64, r: &NewArchiveRecord) -> String {
    // The encoding is assembled first and hashed in one call (cheaper than
    // feeding the hasher ~25 small pieces); the bytes hashed are the same.
    let variable = prev_hash.len()
        + r.conversation.len()
        + r.kind.len()
        + r.sender.len()
        + r.participants.iter().map(|p| p.len() + 8).sum::<usize>()
        + r.content_type.len()
        + r.body.len()
        + r.text.len()
        + r.outcome.len();
    let mut buf = Vec::with_capacity(variable + 13 * 8 + 8 + 8 + 8 + 1);
    let mut field = |b: &[u8]| {
        buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
        buf.extend_from_slice(b);
    };
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(r.conversation.as_bytes());
    field(r.kind.as_bytes());
    field(&r.at_ms.to_be_bytes());
    field(r.sender.as_bytes());
    field(&(r.participants.len() as u64).to_be_bytes());
    for p in &r.participants {
        field(p.as_bytes());
    }
    field(r.content_type.as_bytes());
    field(&r.body);
    field(r.text.as_bytes());
    field(r.outcome.as_bytes());
    field(&[u8::from(r.external)]);
    hex_lower(&Sha256::digest(&buf))
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// What `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ChainFinding {
    /// The record's content no longer matches its hash.
    Altered { seq: i64 },
    /// Records are missing before this one (deleted), or one was inserted
    /// (its predecessor's hash is not the one it was chained to).
    Broken {
        seq: i64,
        expected_prev: String,
        found_prev: String,
    },
    /// Sequence numbers jump (records deleted in between).
    Gap { after: i64, next: i64 },
}

/// Checks a run of records in `seq` order, starting after `anchor`
/// (`(seq, hash)` of the last purged record, or `(0, GENESIS)`).
pub fn verify_chain<'a>(
    anchor: (i64, &str),
    records: impl IntoIterator<Item = &'a ArchiveRecord>,
) -> (Vec<ChainFinding>, Option<(i64, String)>) {
    let mut findings = Vec::new();
    let (mut last_seq, mut last_hash) = (anchor.0, anchor.1.to_owned());
    for r in records {
        if r.seq != last_seq + 1 {
            findings.push(ChainFinding::Gap {
                after: last_seq,
                next: r.seq,
            });
        }
        if r.prev_hash != last_hash {
            findings.push(ChainFinding::Broken {
                seq: r.seq,
                expected_prev: last_hash.clone(),
                found_prev: r.prev_hash.clone(),
            });
        }
        if chain_hash(&r.prev_hash, r.seq, &r.record) != r.hash {
            findings.push(ChainFinding::Altered { seq: r.seq });
        }
        last_seq = r.seq;
        last_hash = r.hash.clone();
    }
    (
        findings,
        (last_seq > anchor.0).then_some((last_seq, last_hash)),
    )
}

/// A search over the archive. Every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Records `user` sent or received (sender or participant).
    pub user: Option<String>,
    /// …in conversations that also involve `with`.
    pub with: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Full-text search over the message text (words, all must match).
    pub text: Option<String>,
    pub conversation: Option<String>,
    /// Only records with `seq` above this (paging).
    pub after_seq: Option<i64>,
    /// At most this many records (oldest first); see [`archive_limit`] for 0
    /// and the cap.
    pub limit: u32,
}

/// One conversation as the mail-store job sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub conversation: String,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Everyone who sent or received in it, sorted.
    pub participants: Vec<String>,
    pub records: u64,
}

/// The archive store.
#[async_trait]
pub trait Archive: Send + Sync {
    /// Appends records at the end of the chain, atomically (all or none),
    /// computing each hash from the previous one; returns their `seq`s.
    async fn append_archive(&self, records: &[NewArchiveRecord]) -> StoreResult<Vec<i64>>;
    /// Like [`append_archive`](Archive::append_archive), but the commit need
    /// only survive a crash of the process, not necessarily a power loss or a
    /// crash of the operating system, after which the newest such appends may
    /// be missing (never a record in the middle of the chain: a later durable
    /// append makes every earlier one durable too). For records whose loss in
    /// a power cut is acceptable: non-critical archiving, which keeps them in
    /// memory before writing anyway. The default is a durable append.
    async fn append_archive_unsynced(&self, records: &[NewArchiveRecord]) -> StoreResult<Vec<i64>> {
        self.append_archive(records).await
    }
    /// Records matching `q`, oldest first.
    async fn search_archive(&self, q: &ArchiveQuery) -> StoreResult<Vec<ArchiveRecord>>;
    /// Records with `seq` above `after_seq`, in order, at most `limit` (see
    /// [`archive_limit`]).
    async fn archive_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ArchiveRecord>>;
    /// `(seq, hash)` the remaining chain starts after: `(0, GENESIS)`, or the
    /// last record removed by retention.
    async fn archive_anchor(&self) -> StoreResult<(i64, String)>;
    /// The newest `(seq, hash)`, if any record exists.
    async fn archive_head(&self) -> StoreResult<Option<(i64, String)>>;
    /// Removes the oldest records: the longest prefix of the chain whose
    /// records are older than `before_ms` (and, with `only_mailed`, belong to
    /// conversations already delivered to every participant's mailbox).
    /// Moves the anchor. Returns how many were removed.
    async fn purge_archive(&self, before_ms: i64, only_mailed: bool) -> StoreResult<u64>;
    /// Reorganises the search indexes so that searches stay fast as the
    /// archive grows (appends add index pieces that every search must
    /// consult until they are merged), in short steps that let appends go on
    /// in between. Run daily with retention. Returns the number of steps
    /// that did work (0: nothing to do). Backends whose indexes need no such
    /// care do nothing.
    async fn compact_archive_indexes(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Conversations whose last record is older than `idle_before_ms` and
    /// that some participant's mailbox has not received yet, or not since its
    /// last record (a conversation that went on after it was mailed is due
    /// again); oldest last record first, at most `limit` (see [`archive_limit`]).
    async fn conversations_to_mail(
        &self,
        idle_before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ConversationSummary>>;
    /// Summary of one conversation, `None` if it has no record.
    async fn conversation_summary(
        &self,
        conversation: &str,
    ) -> StoreResult<Option<ConversationSummary>>;
    /// Records that `mailbox` received the transcript of `conversation` at
    /// `at_ms` (the delivery time; a mark covers the records up to then).
    /// Idempotent; a later mark of the same pair keeps the later time.
    async fn mark_mailed(&self, conversation: &str, mailbox: &str, at_ms: i64) -> StoreResult<()>;
    /// Mailboxes that already received `conversation`.
    async fn mailed(&self, conversation: &str) -> StoreResult<Vec<String>>;
    /// Round trip proving the archive can be written right now.
    async fn archive_health(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> NewArchiveRecord {
        NewArchiveRecord {
            conversation: "c".into(),
            kind: "message".into(),
            at_ms: 1,
            sender: "a@x".into(),
            participants: vec!["b@x".into()],
            content_type: "text/plain".into(),
            body: text.as_bytes().to_vec(),
            text: text.into(),
            outcome: "delivered".into(),
            external: false,
        }
    }

    fn chain(texts: &[&str]) -> Vec<ArchiveRecord> {
        let mut prev = GENESIS.to_owned();
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let seq = i as i64 + 1;
                let hash = chain_hash(&prev, seq, &rec(t));
                let r = ArchiveRecord {
                    seq,
                    record: rec(t),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn the_chain_hash_encoding_does_not_change() {
        // Computed independently (Python: SHA-256 over each field as a
        // big-endian u64 length and its bytes): records hashed by earlier
        // versions must keep verifying.
        assert_eq!(
            chain_hash(GENESIS, 1, &rec("hello")),
            "a5ff5a6b5e17930c827158cde91afa09dc61cfeefe87232ea84d2b0f908755c3"
        );
    }

    #[test]
    fn hashes_are_lower_case_hex_two_digits_per_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_lower(&bytes), expected);
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(&["a", "b", "c"]);
        let (findings, head) = verify_chain((0, GENESIS), &c);
        assert!(findings.is_empty());
        assert_eq!(head.map(|h| h.0), Some(3));
    }

    #[test]
    fn edits_insertions_and_deletions_show() {
        let mut c = chain(&["a", "b", "c"]);
        c[1].record.body = b"B".to_vec();
        assert_eq!(
            verify_chain((0, GENESIS), &c).0,
            vec![ChainFinding::Altered { seq: 2 }]
        );
        let mut d = chain(&["a", "b", "c"]);
        d.remove(1);
        let f = verify_chain((0, GENESIS), &d).0;
        assert!(
            f.iter()
                .any(|x| matches!(x, ChainFinding::Gap { after: 1, next: 3 }))
                && f.iter()
                    .any(|x| matches!(x, ChainFinding::Broken { seq: 3, .. })),
            "{f:?}"
        );
        let mut e = chain(&["a", "b"]);
        let forged = ArchiveRecord {
            seq: 3,
            record: rec("forged"),
            prev_hash: "f".repeat(64),
            hash: chain_hash(&"f".repeat(64), 3, &rec("forged")),
        };
        e.push(forged);
        assert!(matches!(
            verify_chain((0, GENESIS), &e).0.as_slice(),
            [ChainFinding::Broken { seq: 3, .. }]
        ));
        let first_two = chain(&["a", "b", "c"]);
        let anchor = (first_two[1].seq, first_two[1].hash.as_str());
        assert!(
            verify_chain(anchor, &first_two[2..]).0.is_empty(),
            "a purged prefix is fine from its anchor"
        );
    }
}
