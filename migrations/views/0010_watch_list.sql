-- The watch list as the watch_list projector keeps it, for /admin/watch-list. Instants are microseconds since the
-- epoch.
CREATE TABLE watch_list (
    subject     TEXT PRIMARY KEY,
    list        TEXT NOT NULL,                 -- banned | missing-person | vip | …
    severity    TEXT NOT NULL,                 -- critical | major | minor | warning
    note        TEXT,
    until       TEXT,                          -- the last day (site time, YYYY-MM-DD) it raises alarms
    changed_by  TEXT NOT NULL,                 -- who put it on the list or last changed it
    changed_at  INTEGER NOT NULL
);
