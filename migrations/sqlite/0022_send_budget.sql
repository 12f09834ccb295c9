-- The sending rate of the whole installation (CANVASS_SEND_RATE): a token bucket that every
-- worker on the database draws from, on every host, so that two workers set to 20 a second
-- send 20 a second together. Times are the database's own clock (seconds since the epoch), so
-- that hosts whose clocks differ agree. A worker that dies holds at most one small draw.
CREATE TABLE send_budget (
    -- `all`: the installation's rate.
    scope      TEXT PRIMARY KEY,
    -- Messages a second; the bucket holds at most a quarter of a second's worth (one at least).
    rate       REAL NOT NULL CHECK (rate > 0),
    tokens     REAL NOT NULL,
    updated_at REAL NOT NULL
);
