-- Consumed offsets stored in PostgreSQL (debug_sink.sink.offsets): the source of truth for
-- where each consumer group resumes. Only debug_sink.sink.offsets runs these.

-- name: store
-- The next offset to read of each partition of a batch, in the batch's transaction. An offset
-- only moves forward: a batch re-written after a lost commit acknowledgement changes nothing.
INSERT INTO sink_offsets (group_id, topic, partition, next_offset)
VALUES ($1, $2, $3, $4)
    ON CONFLICT (group_id, topic, partition) DO UPDATE
   SET next_offset = GREATEST(sink_offsets.next_offset, EXCLUDED.next_offset),
       updated_at = clock_timestamp()

-- name: stored
-- The next offset to read of each of the partitions $2/$3 (topics, partitions) of group $1.
SELECT o.topic, o.partition, o.next_offset
  FROM sink_offsets o
  JOIN unnest($2::text[], $3::int[]) AS w(topic, partition) USING (topic, partition)
 WHERE o.group_id = $1

-- name: of_group
-- Every stored offset of group $1.
SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1

-- name: seed
-- Replay: set group $1's offsets, replacing stored ones (the sink only moves them forward).
INSERT INTO sink_offsets (group_id, topic, partition, next_offset)
VALUES ($1, $2, $3, $4)
    ON CONFLICT (group_id, topic, partition) DO UPDATE
   SET next_offset = EXCLUDED.next_offset, updated_at = clock_timestamp()

-- name: forget_all
-- Dev mode: the embedded broker starts empty, so stored offsets point into a log that is gone.
DELETE FROM sink_offsets
