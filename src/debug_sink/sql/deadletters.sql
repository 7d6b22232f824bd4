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

-- name: page
-- Dead letters newest first (keyset: ids below $1, NULL: the newest), of topic $2 and class
-- $3 (NULL: any), received at or after $4 (NULL: any time), at most $5: the origin, the
-- reason and the first 2 KB of the (redacted) value.
SELECT id, received_at, topic, partition, "offset", error_class, reason, group_id,
       record_time, substring(value FROM 1 FOR 2048) AS value_head,
       octet_length(value) AS value_bytes, octet_length(key) AS key_bytes
  FROM sink_dead_letters
 WHERE ($1::bigint IS NULL OR id < $1::bigint)
   AND ($2::text IS NULL OR topic = $2::text)
   AND ($3::text IS NULL OR error_class = $3::text)
   AND ($4::timestamptz IS NULL OR received_at >= $4::timestamptz)
 ORDER BY id DESC
 LIMIT $5::integer;

-- name: one
-- $1 id: one dead letter with its key, value and headers (as stored: redacted and bounded).
SELECT id, received_at, topic, partition, "offset", error_class, reason, group_id,
       record_time, key, value, headers, octet_length(value) AS value_bytes
  FROM sink_dead_letters
 WHERE id = $1::bigint;

-- name: groups
-- Dead letters received at or after $1 (NULL: all retained) counted by topic and class,
-- most first: how many, and the first and last time one came.
SELECT topic, error_class, count(*) AS letters, min(received_at) AS first_received_at,
       max(received_at) AS last_received_at
  FROM sink_dead_letters
 WHERE $1::timestamptz IS NULL OR received_at >= $1::timestamptz
 GROUP BY topic, error_class
 ORDER BY letters DESC, topic, error_class;
