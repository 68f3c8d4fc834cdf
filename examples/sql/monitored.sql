-- A monitored pipeline (the seed guide's MonitoredPipeline): failed rows become NULL
-- instead of failing the run, every statement's metrics go to the run report, and
-- EXPLAIN ANALYZE shows the AI operator's own counters.
--
--   cargo run -- --simulate -f examples/sql/monitored.sql --report out/run.json --max-failed-rows 10
SET blossom.on_error = 'null';

EXPLAIN ANALYZE
SELECT id, sentiment(text) AS sentiment FROM 'data/reviews.parquet' WHERE lang = 'en';

SELECT sentiment, count(*) AS reviews
FROM (SELECT sentiment(text) AS sentiment FROM 'data/reviews.parquet')
GROUP BY sentiment
ORDER BY sentiment;
