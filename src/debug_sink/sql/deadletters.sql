-- The dead-letter table (debug_sink.sink.deadletters): every message that did not become a
-- row, with the reason. Only debug_sink.sink.deadletters runs these.

-- name: store
-- One dead letter; a message re-read after a crash is stored once. $11 part: which event of
-- the record (migration 014; 0 unless a record carries several events).
INSERT INTO sink_dead_letters (topic, partition, "offset", key, value, headers,
                               error_class, reason, group_id, record_time, part)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (topic, partition, "offset", part) DO NOTHING

-- name: newest
-- Newest first: since $1 (NULL: any time), of topic $2 and class $3 (NULL: any), at most $4.
SELECT id, received_at, topic, partition, "offset", error_class, reason,
       substring(value FROM 1 FOR 120) AS preview, octet_length(value) AS size
  FROM sink_dead_letters
 WHERE ($1::timestamptz IS NULL OR received_at >= $1)
   AND ($2::text IS NULL OR topic = $2)
   AND ($3::text IS NULL OR error_class = $3)
 ORDER BY id DESC
 LIMIT $4
