-- A disabled user cannot sign in (and their sessions end); `user add` with a new password enables them again.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
