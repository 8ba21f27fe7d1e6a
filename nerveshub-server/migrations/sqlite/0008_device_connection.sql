-- How a device's current (or, once it is gone, last) socket connection reached the server,
-- written by its join: the peer's `ip:port` and how it authenticated (`certificate` or
-- `shared_secret`). NULL until the first socket join (polls leave them alone).
ALTER TABLE devices ADD COLUMN connection_remote_address TEXT;
ALTER TABLE devices ADD COLUMN connection_auth TEXT;
-- A product's devices are listed by identifier, a page at a time: this index serves the
-- filter and the order at once (and every lookup the product_id index served).
CREATE INDEX devices_product_identifier ON devices (product_id, identifier);
DROP INDEX devices_product;
