-- Switchboard storage schema, version 2: what the web front door needs, namely
-- the administrator role, contact groups that exist on their own (a web client
-- creates a group before dragging anyone into it) and signed-in web sessions.
--
-- Portability: as in version 1, a PostgreSQL migration set must mirror this file.
-- `BOOLEAN ... DEFAULT FALSE` is valid on both (SQLite stores 0/1). No SQLite-only
-- spelling is used here.

-- The administrator role, for the web admin API. Existing users are not
-- administrators; an operator grants the role explicitly.
ALTER TABLE users ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;

-- Named groups of a user's contact list, which may be empty. Invariant kept by
-- the backend, not by a foreign key: every non-NULL `contacts.group_name` has a
-- row here for the same owner (upsert_contact creates it, rename_group and
-- remove_group carry the contacts along). A foreign key from contacts would need
-- a rebuild of that table in SQLite, and its ON DELETE SET NULL would also null
-- the `owner` column of the composite key.
CREATE TABLE contact_groups (
    owner      TEXT   NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);

-- Upgraded databases: the groups already named by contacts become groups, so
-- that list_groups shows them. Their creation time is that of the oldest
-- contact in them, the best this data can tell.
INSERT INTO contact_groups (owner, name, created_ms)
SELECT owner, group_name, MIN(added_ms)
FROM contacts
WHERE group_name IS NOT NULL
GROUP BY owner, group_name;

-- Signed-in web clients. Only a hash of the bearer token is kept, so a copy of
-- the database (a backup, a support bundle) does not hand out sessions. The
-- user column is not called `user`, a reserved word in PostgreSQL. Sessions are
-- looked up by hash on every web request (primary key), listed per user oldest
-- first, and purged by expiry.
CREATE TABLE web_sessions (
    token_hash   TEXT   NOT NULL PRIMARY KEY,
    user_address TEXT   NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    client       TEXT
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_address, created_ms);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_ms);
