-- How far the forwarder has had each subject's events confirmed by the NATS stream: the lower bound it resumes
-- from (with the stream's own last message) after a restart.
CREATE TABLE forward_checkpoints (
    subject TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
