-- One row per alarm, as the alarms projector keeps it. Instants are microseconds since the epoch.
CREATE TABLE alarms (
    number           INTEGER PRIMARY KEY,
    alarm_type       TEXT NOT NULL,            -- watched_subject_seen | forced_passage | …
    severity         TEXT NOT NULL,            -- critical | major | minor | warning
    severity_rank    INTEGER NOT NULL,         -- 3 critical … 0 warning, for ordering
    source           TEXT NOT NULL,            -- "device T1", "subject P-1042"
    zone             TEXT,
    detail           TEXT NOT NULL,            -- the latest trigger's words
    active           INTEGER NOT NULL,         -- 1 active, 0 cleared
    acknowledged_by  TEXT,
    acknowledged_at  INTEGER,
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    count            INTEGER NOT NULL,
    cleared_at       INTEGER,
    position         INTEGER NOT NULL          -- the journal position of the latest event
);
CREATE INDEX alarms_listed ON alarms (active DESC, severity_rank DESC, last_seen DESC);

-- Every step of every alarm, for its page: what happened, who or what did it, the words given.
CREATE TABLE alarm_steps (
    number   INTEGER NOT NULL,
    position INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    step     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    text     TEXT NOT NULL,
    PRIMARY KEY (number, position)
);
