-- The seed guide's StreamingPipeline as SQL: NDJSON records in as they arrive, one
-- model call per record (packed, deduplicated, cached), each row out as it is answered.
--
--   cat data/events.ndjson | cargo run -- --simulate --format ndjson -f examples/sql/streaming.sql
--
-- The same statements read an HTTP(S) stream or a WebSocket: write its URL as the
-- LOCATION ('http://127.0.0.1:9000/stream', 'wss://example.com/events'), with headers
-- from the environment: OPTIONS ('header.authorization' 'env:STREAM_TOKEN').
CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE)
  STORED AS NDJSON LOCATION '/dev/stdin'
  OPTIONS ('dead_letter' 'out/events.dead.ndjson');

SELECT id, sent_at, sentiment(text) AS s FROM events WHERE text <> '';
