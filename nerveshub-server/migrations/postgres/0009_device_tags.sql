-- postgres/0009_device_tags.sql (sqlite/0009_device_tags.sql is the same schema)
-- A device's tags, one row each, in the order they were given: filtered exactly (`eu` is
-- not `europe`) through the tag index, where the JSON text column could only be searched
-- for a substring.
CREATE TABLE device_tags (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (device_id, position),
    UNIQUE (device_id, tag)
);
CREATE INDEX device_tags_tag ON device_tags (tag, device_id);
-- dialect: begin (reading the JSON column differs by engine)
INSERT INTO device_tags (device_id, position, tag)
SELECT d.id, t.ordinality - 1, t.value
FROM devices d CROSS JOIN LATERAL jsonb_array_elements_text(d.tags::jsonb) WITH ORDINALITY AS t(value, ordinality);
-- dialect: end
ALTER TABLE devices DROP COLUMN tags;
