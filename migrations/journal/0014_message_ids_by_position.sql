-- Message ids were indexed by (stream_id, position) for an actor's newest ones. Every group commit touches each
-- busy stream's last page of such an index: with 100 turnstiles about 100 index pages, each a 4 KiB frame in the
-- write-ahead log, for ~250 messages. The newest ids now come from the events' causation (the unique
-- (stream_id, version) index); archival prunes by position, which this index serves by touching only its end.
DROP INDEX processed_messages_recent;
CREATE INDEX processed_messages_by_position ON processed_messages (position);
