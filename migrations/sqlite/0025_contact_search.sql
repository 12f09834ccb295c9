-- Part of a name or an address, found in an index rather than by reading every contact: an FTS5
-- table of the contacts' names and addresses cut into trigrams (any three characters in a row,
-- in any case), kept by triggers. It holds no copy of the text (`content` is the contacts
-- table), and `secure-delete` takes a deleted person's trigrams out of the index at once
-- rather than leaving them beside a delete marker until the next merge: erased means gone, in
-- the index too.
CREATE VIRTUAL TABLE contacts_search USING fts5 (
    name,
    email,
    content = 'contacts',
    content_rowid = 'id',
    tokenize = 'trigram'
);

INSERT INTO contacts_search (contacts_search, rank) VALUES ('secure-delete', 1);

INSERT INTO contacts_search (rowid, name, email) SELECT id, name, email FROM contacts;

CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO contacts_search (rowid, name, email) VALUES (new.id, new.name, new.email);
END;

CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts
BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, name, email)
    VALUES ('delete', old.id, old.name, old.email);
END;

CREATE TRIGGER contacts_search_update AFTER UPDATE OF name, email ON contacts
WHEN old.name IS NOT new.name OR old.email IS NOT new.email
BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, name, email)
    VALUES ('delete', old.id, old.name, old.email);
    INSERT INTO contacts_search (rowid, name, email) VALUES (new.id, new.name, new.email);
END;
