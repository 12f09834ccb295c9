-- A token's name is never an address: what a token did must not read in the audit log as done
-- by the person at that address. Names written before that rule lose their @.
UPDATE staff_tokens SET name = substr(replace(name, '@', ' at '), 1, 64) WHERE name LIKE '%@%';
