-- Switchboard compliance archive, version 4: records are found by
-- conversation and by party through *threads* and an FTS5 index of thread
-- numbers, instead of a B-tree index on (conversation, party_set).
--
-- A thread is one conversation with one party set: all the messages of a 1:1
-- conversation, the messages of a conference between two membership changes.
-- Each record names its thread (`thread`). An index keyed by conversation had
-- to be written at a scattered place for nearly every record (consecutive
-- records belong to different conversations): one more page per record in the
-- WAL and at checkpoints, two thirds of the bytes written per record. The
-- FTS5 index instead collects the thread numbers of a whole appended batch in
-- memory and writes them out as one small segment (merged later in the
-- background of appends), like the full-text index.
--
-- "Records of conversation C" are the records of C's threads; "records X sent
-- or received" are the records of the threads whose party set holds X; both
-- are looked up as `archive_thread_index MATCH '"t1" OR "t2" …'`.
--
-- Nothing hashed changes: `thread` is derived, like `party_set` before it.

-- Bumped by every purge that removes records: threads and party sets are
-- only ever removed by a purge, so an archive handle may remember threads
-- for as long as this stays the same.
INSERT INTO archive_meta (name, value) VALUES ('purge_generation', 0);

CREATE TABLE archive_threads (
    thread       INTEGER NOT NULL PRIMARY KEY,
    conversation TEXT    NOT NULL,
    set_id       INTEGER NOT NULL,
    UNIQUE (conversation, set_id)
);
CREATE INDEX archive_threads_by_set ON archive_threads (set_id);

INSERT INTO archive_threads (conversation, set_id)
SELECT conversation, set_id FROM archive_conversation_sets ORDER BY conversation, set_id;

DROP INDEX archive_records_by_conversation_set;
ALTER TABLE archive_records ADD COLUMN thread INTEGER;
UPDATE archive_records SET thread = (
    SELECT t.thread FROM archive_threads t
    WHERE t.conversation = archive_records.conversation AND t.set_id = archive_records.party_set
);
ALTER TABLE archive_records DROP COLUMN party_set;
DROP TABLE archive_conversation_sets;

-- Only rowids per thread number (detail = none, no column sizes): the
-- smallest FTS5 index there is.
CREATE VIRTUAL TABLE archive_thread_index USING fts5 (
    thread,
    content = 'archive_records',
    content_rowid = 'seq',
    detail = none,
    columnsize = 0,
    tokenize = 'ascii'
);
INSERT INTO archive_thread_index (archive_thread_index) VALUES ('rebuild');

-- As in version 3, the backend indexes what it appends (text and thread, one
-- statement each per batch), with `backend_indexes` set to 1 inside its
-- transaction (the committed value is always 0). A row inserted by any other
-- means (a direct edit with the sqlite3 shell, such as a forgery) is indexed
-- by the trigger below, so that searches show it as they show any record
-- (and `archive verify` reports it). The delete and update triggers act only
-- on rows the indexes hold (those with a row in `archive_text_docsize`).
INSERT INTO archive_meta (name, value) VALUES ('backend_indexes', 0);

DROP TRIGGER archive_text_after_delete;
DROP TRIGGER archive_text_after_update;

CREATE TRIGGER archive_index_after_insert AFTER INSERT ON archive_records
WHEN (SELECT value FROM archive_meta WHERE name = 'backend_indexes') = 0
BEGIN
    INSERT INTO archive_text (rowid, text) VALUES (new.seq, new.text);
    INSERT INTO archive_thread_index (rowid, thread) VALUES (new.seq, new.thread);
END;

CREATE TRIGGER archive_index_after_delete AFTER DELETE ON archive_records
WHEN EXISTS (SELECT 1 FROM archive_text_docsize WHERE id = old.seq)
BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO archive_thread_index (archive_thread_index, rowid, thread)
    VALUES ('delete', old.seq, old.thread);
END;

CREATE TRIGGER archive_index_after_update AFTER UPDATE OF seq, text, thread ON archive_records
WHEN EXISTS (SELECT 1 FROM archive_text_docsize WHERE id = old.seq)
BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO archive_thread_index (archive_thread_index, rowid, thread)
    VALUES ('delete', old.seq, old.thread);
    INSERT INTO archive_text (rowid, text) VALUES (new.seq, new.text);
    INSERT INTO archive_thread_index (rowid, thread) VALUES (new.seq, new.thread);
END;
