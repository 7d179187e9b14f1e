-- Events a follower could not handle (an undecodable payload, an instant out of range, a bug): parked with the
-- error so the follower goes on, shown on /admin/projections and /healthz, re-driven or discarded by an admin.
CREATE TABLE parked_events (
    follower    TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    stream_id   TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    parked_at   INTEGER NOT NULL,              -- microseconds since the Unix epoch
    attempts    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (follower, position)
) WITHOUT ROWID;
