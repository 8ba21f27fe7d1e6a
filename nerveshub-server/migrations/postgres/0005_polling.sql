-- Devices that poll (GET /device/update, POST /device/api/v1/poll) instead of keeping a
-- socket: when each last polled, and until when it counts as online for the rollout
-- orchestrator (its last poll plus two poll intervals).
ALTER TABLE devices ADD COLUMN last_poll_at BIGINT;
ALTER TABLE devices ADD COLUMN poll_online_until BIGINT;
-- The interval a product's polling devices are told to use, in seconds; NULL uses the
-- server's default (one hour).
ALTER TABLE products ADD COLUMN poll_interval_seconds BIGINT;
