-- Sign-in attempts, counted before the password is checked, by every process on the database:
-- per address and IP together, per IP, and per address (which only slows attempts down). One
-- row per key and window; a key whose window has passed starts a new one. Keys hold the
-- address's hash, never the address.
CREATE TABLE sign_in_attempts (
    key               TEXT PRIMARY KEY,
    window_started_at TIMESTAMPTZ NOT NULL,
    attempts          BIGINT NOT NULL
);
CREATE INDEX sign_in_attempts_window ON sign_in_attempts (window_started_at);
