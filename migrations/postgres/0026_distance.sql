-- Where each postcode lies (the ONS Postcode Directory's lat and long, WGS84 degrees; NULL where
-- it gives none), and an event mailing's distance rule: only the people within some miles of the
-- venue. The venue's place is kept with the rule, with the miles in a degree of longitude there
-- (the map's scale at the venue), so that the rule needs no trigonometry in SQL.
ALTER TABLE postcodes ADD COLUMN latitude DOUBLE PRECISION;
ALTER TABLE postcodes ADD COLUMN longitude DOUBLE PRECISION;

-- A distance rule reads the postcodes in a box around the venue.
CREATE INDEX postcodes_by_place ON postcodes (latitude, longitude);

ALTER TABLE campaigns ADD COLUMN within_miles BIGINT;
ALTER TABLE campaigns ADD COLUMN venue_latitude DOUBLE PRECISION;
ALTER TABLE campaigns ADD COLUMN venue_longitude DOUBLE PRECISION;
ALTER TABLE campaigns ADD COLUMN venue_miles_east DOUBLE PRECISION;
