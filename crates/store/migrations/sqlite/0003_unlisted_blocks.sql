-- Switchboard storage schema, version 3: blocking someone who is not in the
-- contact list, without putting them in it.
--
-- Portability: as in versions 1 and 2, a PostgreSQL migration set must mirror
-- this file. `BOOLEAN ... DEFAULT TRUE` is valid on both (SQLite stores 1).

-- Whether the entry is part of the owner's contact list. An entry with
-- `listed` false exists only because the owner blocked that person (its level
-- is `blocked` and it has no group): it is not in the list, does not count
-- towards the list's size limit, and goes away when the person is unblocked.
-- Every entry of an upgraded database was put in the list by the owner as far
-- as this data can tell, so they all stay listed.
ALTER TABLE contacts ADD COLUMN listed BOOLEAN NOT NULL DEFAULT TRUE;
