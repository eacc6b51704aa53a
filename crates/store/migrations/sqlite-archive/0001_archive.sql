-- Switchboard compliance archive, version 1: the hash-chained records, the
-- indexes that answer searches (parties, conversations, full text), the
-- retention anchor and the mail-store bookkeeping.
--
-- This is its own database file (`archive.db`), never the main store: it grows
-- large, has its own retention and backups, and critical mode must be able to
-- tell "the archive cannot be written" apart from the rest.
--
-- Only `archive_records` (and `archive_anchor`) are evidence: the hash chain
-- covers every column of a record except the derived ones below, and
-- `switchboard archive verify` checks it. Every other table is derived from the
-- records and exists to make searches and the mail job fast.
--
-- Times are Unix milliseconds in BIGINT; JSON is TEXT (de)serialised by the
-- backend; text comparisons are byte-wise (SQLite BINARY).

-- `health_probe` is bumped by health checks to prove the file is writable.
CREATE TABLE archive_meta (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO archive_meta (name, value) VALUES ('health_probe', 0);

-- Where the remaining chain starts: the `seq` and `hash` of the last record
-- removed by retention, or 0 and the genesis hash while nothing was removed.
CREATE TABLE archive_anchor (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO archive_anchor (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The chain. `seq` is the position in the chain (1, 2, 3… without gaps),
-- assigned by the backend under the write lock, never by SQLite (no
-- AUTOINCREMENT); it is the rowid, so seq order is the table's own order.
-- `participants` is a JSON array of addresses; `external` is 0 or 1.
CREATE TABLE archive_records (
    seq          INTEGER NOT NULL PRIMARY KEY,
    conversation TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    at_ms        BIGINT  NOT NULL,
    sender       TEXT    NOT NULL,
    participants TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    text         TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    external     BOOLEAN NOT NULL CHECK (external IN (0, 1)),
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
-- Every index of a rowid table ends with the rowid, so these also deliver the
-- rows of one conversation or sender in seq order.
CREATE INDEX archive_records_by_conversation ON archive_records (conversation);
CREATE INDEX archive_records_by_time ON archive_records (at_ms);
CREATE INDEX archive_records_by_sender ON archive_records (sender);

-- Who took part in each record: its sender and every participant, once each.
-- Answers "records this user sent or received".
CREATE TABLE archive_party (
    address TEXT    NOT NULL,
    seq     INTEGER NOT NULL REFERENCES archive_records (seq) ON DELETE CASCADE,
    PRIMARY KEY (address, seq)
) WITHOUT ROWID;
CREATE INDEX archive_party_by_seq ON archive_party (seq);

-- One row per conversation with at least one record: its span and size,
-- maintained by the backend on append and purge.
CREATE TABLE archive_conversations (
    conversation TEXT   NOT NULL PRIMARY KEY,
    first_ms     BIGINT NOT NULL,
    last_ms      BIGINT NOT NULL,
    records      BIGINT NOT NULL
);
CREATE INDEX archive_conversations_by_last ON archive_conversations (last_ms);

-- Everyone who sent or received in a conversation (over its remaining
-- records). Answers "conversations involving X" and "who must get the
-- transcript".
CREATE TABLE archive_conversation_parties (
    conversation TEXT NOT NULL
        REFERENCES archive_conversations (conversation) ON DELETE CASCADE,
    address      TEXT NOT NULL,
    PRIMARY KEY (conversation, address)
) WITHOUT ROWID;
CREATE INDEX archive_conversation_parties_by_address
    ON archive_conversation_parties (address);

-- Mail-store bookkeeping: `mailbox` received the transcript of
-- `conversation` at `at_ms`. Not tied to a conversation row: a mark made
-- before the records it covers are visible is kept.
CREATE TABLE archive_mailed (
    conversation TEXT   NOT NULL,
    mailbox      TEXT   NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (conversation, mailbox)
) WITHOUT ROWID;

-- Full-text index over `archive_records.text`, as an external-content FTS5
-- table: the text is stored once (in the record, where the hash chain needs
-- it) and the index holds only tokens. The triggers keep the index in step
-- with every change to the records made through any connection, including a
-- direct edit with the sqlite3 shell: an external-content index that missed
-- such an edit would be handed the wrong old text on the next delete and
-- become corrupt, breaking every later search. `remove_diacritics 2` lets
-- "resume" find "résumé".
CREATE VIRTUAL TABLE archive_text USING fts5 (
    text,
    content = 'archive_records',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER archive_text_after_insert AFTER INSERT ON archive_records BEGIN
    INSERT INTO archive_text (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER archive_text_after_delete AFTER DELETE ON archive_records BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER archive_text_after_update AFTER UPDATE OF seq, text ON archive_records BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO archive_text (rowid, text) VALUES (new.seq, new.text);
END;
