-- A campaign that names constituencies and postcode areas reaches everyone in either; narrowed,
-- only the people under the postcodes who are within the constituencies.
ALTER TABLE campaigns ADD COLUMN postcodes_within BOOLEAN NOT NULL DEFAULT FALSE;
