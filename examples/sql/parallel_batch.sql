-- Parallel batch processing (the seed guide's ParallelBatchProcessor): a larger CSV,
-- processed with many requests in flight under a rate limit. No batching code: the
-- engine deduplicates, keeps blossom.max_concurrency requests in flight across all
-- partitions, and holds to blossom.requests_per_minute.
--
--   cargo run -- --simulate -f examples/sql/parallel_batch.sql
SET blossom.max_concurrency = 32;
SET blossom.requests_per_minute = 30000;
SET blossom.max_retries = 5;

-- A larger input: every review twenty times, each copy a distinct text.
COPY (
  SELECT r.id * 100 + k.v AS id, r.text || ' (copy ' || k.v || ')' AS text, r.lang, r.category
  FROM 'data/reviews.csv' AS r CROSS JOIN generate_series(1, 20) AS k(v)
  WHERE r.text IS NOT NULL AND r.text <> ''
) TO 'out/reviews_large.csv' STORED AS CSV;

SELECT category, sentiment, count(*) AS reviews
FROM (SELECT category, sentiment(text) AS sentiment FROM 'out/reviews_large.csv')
GROUP BY category, sentiment
ORDER BY category, sentiment;
