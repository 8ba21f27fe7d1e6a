-- Deployments (NervesHub's deployment groups), their releases, and what the rollout
-- orchestrator keeps per device and per update. Same conventions as 0001 (times in Unix ms,
-- JSON as TEXT, flags 0/1).
-- postgres/0002_fleet.sql is the same schema in PostgreSQL's dialect; a test compares them.

CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- fixed at creation, from the first firmware
    platform TEXT NOT NULL,
    architecture TEXT NOT NULL,
    is_active BIGINT NOT NULL DEFAULT 0,
    -- JSON {"version": "<Elixir requirement>" or "", "tags": [...], "tag_operator": "and"|"or"}
    conditions TEXT NOT NULL,
    concurrent_updates BIGINT NOT NULL DEFAULT 10,
    -- FIFO | LIFO
    queue_management TEXT NOT NULL DEFAULT 'FIFO',
    priority_queue_enabled BIGINT NOT NULL DEFAULT 0,
    priority_queue_concurrent_updates BIGINT NOT NULL DEFAULT 5,
    priority_queue_firmware_version_threshold TEXT,
    -- JSON array: devices must carry all of these tags to be sent the release
    release_tags TEXT NOT NULL DEFAULT '[]',
    lock_device_membership BIGINT NOT NULL DEFAULT 0,
    device_failure_threshold BIGINT NOT NULL DEFAULT 3,
    device_failure_rate_seconds BIGINT NOT NULL DEFAULT 180,
    device_failure_rate_amount BIGINT NOT NULL DEFAULT 5,
    penalty_timeout_minutes BIGINT NOT NULL DEFAULT 1440,
    -- health gate: success needs the release's uuid (and validation when required) after reboot
    require_validated BIGINT NOT NULL DEFAULT 0,
    health_timeout_minutes BIGINT NOT NULL DEFAULT 15,
    -- fleet-wide halt: percent of halt_window; NULL = off
    halt_failure_rate BIGINT,
    halt_window BIGINT NOT NULL DEFAULT 20,
    halted_at BIGINT,
    halt_reason TEXT,
    -- when a user last lifted a halt: only updates that finished later count for the next
    halt_cleared_at BIGINT,
    notes TEXT NOT NULL DEFAULT '',
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (product_id, name)
);

CREATE TABLE deployment_releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id BIGINT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    firmware_id BIGINT NOT NULL REFERENCES firmwares(id) ON DELETE RESTRICT,
    created_by_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    inserted_at BIGINT NOT NULL,
    UNIQUE (deployment_id, number)
);
CREATE INDEX deployment_releases_firmware ON deployment_releases (firmware_id);

ALTER TABLE devices ADD COLUMN deployment_id BIGINT REFERENCES deployments(id) ON DELETE SET NULL;
-- the uuid of the firmware the device last reported (also inside firmware_metadata)
ALTER TABLE devices ADD COLUMN firmware_uuid TEXT;
ALTER TABLE devices ADD COLUMN updates_blocked_until BIGINT;
-- JSON array of Unix ms: when each update attempt since the last success began
ALTER TABLE devices ADD COLUMN update_attempts TEXT NOT NULL DEFAULT '[]';
CREATE INDEX devices_deployment ON devices (deployment_id);

ALTER TABLE device_updates ADD COLUMN deployment_id BIGINT REFERENCES deployments(id) ON DELETE SET NULL;
ALTER TABLE device_updates ADD COLUMN priority_queue BIGINT NOT NULL DEFAULT 0;
-- NULL while the update is in flight; set when it reached its outcome
ALTER TABLE device_updates ADD COLUMN finished_at BIGINT;
UPDATE device_updates SET finished_at = updated_at
    WHERE status NOT IN ('requested', 'received', 'started', 'updating');
UPDATE device_updates SET finished_at = updated_at
    WHERE finished_at IS NULL AND id < (SELECT MAX(u.id) FROM device_updates u
        WHERE u.device_id = device_updates.device_id AND u.finished_at IS NULL);
-- at most one update in flight per device: the orchestrator's guarantee against a second push
CREATE UNIQUE INDEX device_updates_in_flight ON device_updates (device_id) WHERE finished_at IS NULL;
CREATE INDEX device_updates_deployment ON device_updates (deployment_id, finished_at);
