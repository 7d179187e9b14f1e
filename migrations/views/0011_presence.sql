-- People's presence as the presence projector keeps it, for /muster and attendance. Instants are microseconds
-- since the epoch. `person` is the presence stream's id (the subject's pseudonym); `subject` is shown to managers
-- and is what forgetting a person blanks.
CREATE TABLE presence (
    person            TEXT PRIMARY KEY,
    subject           TEXT NOT NULL,
    inside            INTEGER NOT NULL,        -- 1 inside `zone`, 0 not
    zone              TEXT NOT NULL,           -- where they are, or were last
    since             INTEGER,                 -- when they came in (inside only)
    last_seen_at      INTEGER NOT NULL,
    last_seen_device  TEXT NOT NULL
);
CREATE INDEX presence_inside ON presence (inside, zone);

-- Every identified passage: who, which way, where, how sure.
CREATE TABLE identified_passages (
    position    INTEGER PRIMARY KEY,
    person      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    turnstile   TEXT NOT NULL,
    camera      TEXT NOT NULL,
    zone        TEXT NOT NULL,
    direction   TEXT NOT NULL,                 -- in | out
    confidence  REAL NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX identified_passages_at ON identified_passages (at);

-- Anti-passback violations: entering a zone one was inside already, leaving one never entered.
CREATE TABLE anti_passback (
    position    INTEGER PRIMARY KEY,
    person      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    direction   TEXT NOT NULL,
    violation   TEXT NOT NULL,                 -- already_inside | never_entered
    at          INTEGER NOT NULL
);
