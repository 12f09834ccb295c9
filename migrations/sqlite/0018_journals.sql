-- The suppression journals this database has written to: one per host and path. A journal
-- missing where this database has written to one was lost or moved, and canvass refuses to
-- start a new one there unless told (`canvass migrate --new-journal`): a new, empty journal
-- would let a restore bring back everyone erased since the backup.
CREATE TABLE journals (
    host       TEXT NOT NULL,
    path       TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (host, path)
);
