-- Who may use the web pages and the API. Passwords and tokens are stored only as hashes.
CREATE TABLE users (
    name           TEXT    PRIMARY KEY,
    role           TEXT    NOT NULL CHECK (role IN ('manager', 'admin')),
    password_hash  TEXT    NOT NULL,           -- argon2id, PHC string
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,             -- what the token is for ("grafana", "nightly export")
    role         TEXT    NOT NULL CHECK (role IN ('manager', 'admin')),
    token_hash   TEXT    NOT NULL UNIQUE,      -- SHA-256 of the token: tokens are long random secrets
    created_at   INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash     TEXT    PRIMARY KEY,           -- SHA-256 of the cookie value
    user_name   TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf        TEXT    NOT NULL,              -- the token every state-changing form of this session carries
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
