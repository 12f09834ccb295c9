-- What each relay has carried in the current clock hour and UTC day, for its hourly and daily
-- caps (CANVASS_SMTP_URL's ?hourly= and ?daily=), counted by every worker on the database in
-- the statement that takes a message's place: the cap holds for all of them together.
CREATE TABLE relay_usage (
    -- `host:port`.
    relay     TEXT NOT NULL,
    period    TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    -- The window's start, in seconds since the epoch.
    starts_at BIGINT NOT NULL,
    sent      BIGINT NOT NULL,
    PRIMARY KEY (relay, period)
);
