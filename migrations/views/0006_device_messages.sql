-- What the gateway's message counter and clock say about each device: messages lost by `seq` jumps, the last
-- `seq` seen, and the clock skew of its latest message (recorded time minus device time, in milliseconds:
-- positive when the device's clock is behind ours or the message took long to arrive).
ALTER TABLE device_status ADD COLUMN last_seq INTEGER;
ALTER TABLE device_status ADD COLUMN lost_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE device_status ADD COLUMN clock_skew_ms INTEGER;
