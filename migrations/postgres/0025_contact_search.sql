-- Part of a name or an address, found in an index rather than by reading every contact:
-- pg_trgm's trigram index of the lower-cased names and addresses, which a `LIKE '%...%'` of
-- three characters or more reads. pg_trgm is a trusted extension: a database owner may create
-- it without being a superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX contacts_search ON contacts
    USING gin (lower(name) gin_trgm_ops, lower(email) gin_trgm_ops);
