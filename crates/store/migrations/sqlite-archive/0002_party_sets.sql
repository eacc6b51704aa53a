-- Switchboard compliance archive, version 2: who took part in a record is
-- found through *party sets* instead of one `archive_party` row per party and
-- record.
--
-- Version 1 wrote, for every record, one row per party into an index ordered
-- by address (plus one by record): two or three scattered index pages per 1:1
-- message and ~250 per message of a 250-member conference, rewritten at every
-- commit. Now the parties of a record (sender and participants, once each,
-- sorted byte-wise) form a set that is stored once and shared by every record
-- with the same parties: all the messages of a 1:1 conversation, all the
-- messages of a conference between two membership changes. A record names
-- its set in `party_set`; the only index a record adds for searches by
-- conversation and by party is `(conversation, party_set)`.
--
-- Nothing hashed changes: `party_set` is derived from `sender` and
-- `participants`, like the index tables, and `archive verify` checks the same
-- columns as before.

-- One row per distinct set of parties: `members` is the JSON array of the
-- addresses, distinct and sorted byte-wise (the key the backend looks sets up
-- by).
CREATE TABLE archive_party_sets (
    set_id  INTEGER NOT NULL PRIMARY KEY,
    members TEXT    NOT NULL UNIQUE
);

-- Who is in each set: "sets this address is in".
CREATE TABLE archive_set_members (
    address TEXT    NOT NULL,
    set_id  INTEGER NOT NULL,
    PRIMARY KEY (address, set_id)
) WITHOUT ROWID;

-- Which sets each conversation's remaining records use: leads from an
-- address's sets to its records through `archive_records_by_conversation_set`.
CREATE TABLE archive_conversation_sets (
    set_id       INTEGER NOT NULL,
    conversation TEXT    NOT NULL,
    PRIMARY KEY (set_id, conversation)
) WITHOUT ROWID;
CREATE INDEX archive_conversation_sets_by_conversation
    ON archive_conversation_sets (conversation);

-- Every record gets its set (NULL only in this migration, until filled below).
ALTER TABLE archive_records ADD COLUMN party_set INTEGER;

-- The sets of the existing records, from their `archive_party` rows (the
-- sender and every participant, once each). A subquery with ORDER BY under an
-- aggregate is not flattened, so the addresses reach json_group_array sorted.
CREATE TEMP TABLE archive_record_members (
    seq     INTEGER NOT NULL PRIMARY KEY,
    members TEXT    NOT NULL
);
INSERT INTO archive_record_members (seq, members)
SELECT r.seq,
       (SELECT json_group_array(address)
        FROM (SELECT p.address AS address FROM archive_party p
              WHERE p.seq = r.seq ORDER BY p.address))
FROM archive_records r;

INSERT INTO archive_party_sets (members)
SELECT DISTINCT members FROM archive_record_members ORDER BY members;

INSERT INTO archive_set_members (address, set_id)
SELECT DISTINCT j.value, s.set_id FROM archive_party_sets s, json_each(s.members) j;

UPDATE archive_records SET party_set = (
    SELECT s.set_id FROM archive_record_members m
    JOIN archive_party_sets s ON s.members = m.members
    WHERE m.seq = archive_records.seq
);

DROP TABLE archive_record_members;

INSERT INTO archive_conversation_sets (set_id, conversation)
SELECT DISTINCT party_set, conversation FROM archive_records;

-- The indexes of version 1 that every record paid for: by conversation (now
-- the prefix of the new index), by sender (a sender's records are found
-- through the sets) and the party rows.
DROP INDEX archive_records_by_conversation;
DROP INDEX archive_records_by_sender;
DROP TABLE archive_party;

-- Every index of a rowid table ends with the rowid (seq).
CREATE INDEX archive_records_by_conversation_set
    ON archive_records (conversation, party_set);
