-- The messages `canvass inbox import` (and, later, the IMAP reader) has read, by the SHA-256 of
-- their bytes: a report read twice (a folder imported again, a message copied into two
-- mailboxes) is acted on once. Nothing here can be read back into an address.
CREATE TABLE inbox_messages (
    digest  TEXT PRIMARY KEY,
    -- What reading it came to: `acted`, `ignored`, `unreadable`.
    outcome TEXT NOT NULL,
    read_at TIMESTAMPTZ NOT NULL
);
