-- The alarms policy counts each sender's dead letters of the last minute every second: an index on arrival keeps
-- that a short range scan however many letters are kept.
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
