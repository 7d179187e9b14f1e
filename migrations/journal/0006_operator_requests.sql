-- Commands people give from the command line (`gatehouse lock-out`, `unlock`, ...). Only the core that owns
-- the data directory may append to the journal, so a command line run while `serve` runs leaves its request
-- here and the server carries it out (or the command starts a core of its own when no server runs). The
-- request's id is its causation (`request:ID`), so carrying one out twice (a crash between the append and the
-- mark) records its events once.
CREATE TABLE operator_requests (
    id           INTEGER PRIMARY KEY,
    target       TEXT NOT NULL,              -- the stream the command is for (a device id today)
    command      TEXT NOT NULL,              -- the request as JSON (`requests::OperatorCommand`)
    actor        TEXT NOT NULL,              -- who asked: cli:OSUSER or user:NAME
    requested_at INTEGER NOT NULL,           -- microseconds since the epoch
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'refused')),
    outcome      TEXT,                       -- what happened, in words
    position     INTEGER,                    -- the journal position of its last event, when it recorded any
    finished_at  INTEGER
);
CREATE INDEX operator_requests_pending ON operator_requests (id) WHERE status = 'pending';

-- The command topics an MQTT session of the embedded endpoint subscribed to, kept across restarts of
-- Gatehouse so a gateway with a persistent session keeps receiving its devices' desired state.
CREATE TABLE mqtt_subscriptions (
    client_id TEXT NOT NULL,
    topic     TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (client_id, topic)
) WITHOUT ROWID;
