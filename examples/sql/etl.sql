-- Simple ETL (the seed guide's SimpleETLPipeline): extract the reviews CSV, transform
-- each English review with two AI calls, load the result as JSON lines.
--
--   cargo run -- --simulate -f examples/sql/etl.sql
COPY (
  SELECT id AS original_id,
         text AS original_text,
         enhance(text) AS enhanced_text,
         insights(enhance(text)) AS insights,
         now() AS processed_at
  FROM 'data/reviews.csv'
  WHERE lang = 'en'
) TO 'out/reviews_enhanced.json' STORED AS JSON;

SELECT count(*) AS records, count(enhanced_text) AS enhanced
FROM 'out/reviews_enhanced.json';
