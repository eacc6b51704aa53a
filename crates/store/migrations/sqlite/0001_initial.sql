-- Switchboard storage schema, version 1: directory, credentials, registrar
-- bindings, scoped policies, offline messages, contact lists and the change
-- sequence.
--
-- Portability: a PostgreSQL migration set must mirror this file table for table
-- and column for column. The only SQLite-specific spellings are the column types
-- `BLOB` (PostgreSQL: BYTEA) and `INTEGER PRIMARY KEY AUTOINCREMENT` (PostgreSQL:
-- BIGINT GENERATED ALWAYS AS IDENTITY). Times are Unix milliseconds in BIGINT;
-- JSON is kept as TEXT and (de)serialised by the backend, so no JSON functions
-- are needed in SQL. Text comparisons are byte-wise (SQLite BINARY; PostgreSQL
-- must use COLLATE "C") because the storage traits promise byte-wise sort orders.

-- Store-wide counters. `change_seq` grows in the same transaction as every
-- directory, policy and contact change, so that another process (the CLI) can
-- tell a running server that its caches are stale. `health_probe` is written by
-- health checks to prove the database is writable.
CREATE TABLE meta (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('change_seq', 0);
INSERT INTO meta (name, value) VALUES ('health_probe', 0);

CREATE TABLE domains (
    name       TEXT   NOT NULL PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

-- `domain` is the part of `address` after its last '@'; the foreign key (no
-- cascade) keeps a domain from disappearing under its users.
CREATE TABLE users (
    address       TEXT   NOT NULL PRIMARY KEY,
    domain        TEXT   NOT NULL REFERENCES domains (name),
    display_name  TEXT,
    password_hash TEXT   NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX users_by_domain ON users (domain);

-- Digest HA1 values; `position` keeps the order the caller gave them in.
CREATE TABLE user_ha1 (
    address   TEXT    NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    realm     TEXT    NOT NULL,
    algorithm TEXT    NOT NULL,
    username  TEXT    NOT NULL,
    hex       TEXT    NOT NULL,
    PRIMARY KEY (address, position),
    UNIQUE (address, realm, algorithm, username)
);

-- Registrar bindings. Deliberately no foreign key to users: the registrar
-- group-commits many users' bindings in one transaction, and one user removed
-- concurrently must not make the whole batch fail. remove_user deletes them.
-- `path` and `features` are JSON arrays of strings.
CREATE TABLE bindings (
    aor           TEXT    NOT NULL,
    contact       TEXT    NOT NULL,
    instance      TEXT,
    reg_id        BIGINT,
    q_milli       INTEGER CHECK (q_milli IS NULL OR (q_milli >= 0 AND q_milli <= 1000)),
    expires_ms    BIGINT  NOT NULL,
    call_id       TEXT    NOT NULL,
    cseq          BIGINT  NOT NULL,
    transport     TEXT    NOT NULL,
    source_addr   TEXT    NOT NULL,
    local_addr    TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    user_agent    TEXT,
    features      TEXT    NOT NULL,
    registered_ms BIGINT  NOT NULL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX bindings_by_expiry ON bindings (expires_ms);

-- Policy documents (JSON text); `scope` is PolicyScope::key: `global` or
-- `user:ADDRESS`.
CREATE TABLE policies (
    kind  TEXT NOT NULL,
    scope TEXT NOT NULL,
    doc   TEXT NOT NULL,
    PRIMARY KEY (kind, scope)
);

-- Offline messages. The ever-increasing id (never reused, hence AUTOINCREMENT)
-- is the delivery order and the handle a server uses to delete a delivered
-- message, so a stale id can never hit a newer message.
CREATE TABLE offline_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient      TEXT    NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    sender         TEXT    NOT NULL,
    sender_display TEXT,
    content_type   TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    received_ms    BIGINT  NOT NULL,
    expires_ms     BIGINT  NOT NULL,
    attempts       BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX offline_by_recipient ON offline_messages (recipient, id);
CREATE INDEX offline_by_expiry ON offline_messages (expires_ms);

-- Contact lists: one entry per (owner, contact); `contact` may be any address,
-- local or federated, so it has no foreign key.
CREATE TABLE contacts (
    owner      TEXT   NOT NULL REFERENCES users (address) ON DELETE CASCADE,
    contact    TEXT   NOT NULL,
    group_name TEXT,
    level      TEXT,
    added_ms   BIGINT NOT NULL,
    PRIMARY KEY (owner, contact)
);
CREATE INDEX contacts_by_contact ON contacts (contact);
