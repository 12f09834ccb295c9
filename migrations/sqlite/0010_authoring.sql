-- A campaign written in Markdown keeps its source (its HTML template is made from it), and a
-- campaign may have a From and Reply-To of its own.
ALTER TABLE campaigns ADD COLUMN markdown TEXT;
ALTER TABLE campaigns ADD COLUMN from_address TEXT;
ALTER TABLE campaigns ADD COLUMN reply_to TEXT;
