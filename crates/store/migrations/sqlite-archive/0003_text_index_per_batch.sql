-- Switchboard compliance archive, version 3: the full-text index of new
-- records is written by the backend, one statement per appended batch,
-- instead of by a trigger per record.
--
-- A trigger that writes to the FTS5 table made every multi-row insert of
-- records run in a statement transaction, and FTS5 writes its pending tokens
-- out as a new segment at every statement savepoint: a batch of records
-- produced several small segments (and later merges) instead of one, and its
-- pages were copied to the statement journal. The backend now inserts the
-- records (`INSERT OR FAIL`, no statement journal) and then their text with
-- `INSERT INTO archive_text (rowid, text) SELECT seq, text FROM
-- archive_records WHERE seq BETWEEN first AND last`, in the same transaction.
--
-- A row added to `archive_records` by other means (a direct edit with the
-- sqlite3 shell: a forgery, which `archive verify` reports) is therefore not
-- in the full-text index. The delete and update triggers must then not hand
-- its text to the index (an external-content index given the text of a row
-- it never indexed becomes corrupt): they act only on rows the index holds,
-- which are exactly those with a row in FTS5's `archive_text_docsize` shadow
-- table (one per indexed row).

DROP TRIGGER archive_text_after_insert;
DROP TRIGGER archive_text_after_delete;
DROP TRIGGER archive_text_after_update;

CREATE TRIGGER archive_text_after_delete AFTER DELETE ON archive_records
WHEN EXISTS (SELECT 1 FROM archive_text_docsize WHERE id = old.seq)
BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
END;

CREATE TRIGGER archive_text_after_update AFTER UPDATE OF seq, text ON archive_records
WHEN EXISTS (SELECT 1 FROM archive_text_docsize WHERE id = old.seq)
BEGIN
    INSERT INTO archive_text (archive_text, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO archive_text (rowid, text) VALUES (new.seq, new.text);
END;
