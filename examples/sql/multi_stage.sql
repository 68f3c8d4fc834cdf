-- Multi-stage pipeline (the seed guide's MultiStagePipeline): each stage reads the one
-- before, as CTEs; the result goes to JSON. Stage 2 classifies the tone of the
-- insights (categorize() arrives with the function library).
--
--   cargo run -- --simulate -f examples/sql/multi_stage.sql
COPY (
  WITH stage1 AS (
    SELECT id, title, insights(text) AS insights FROM 'data/articles.json'
  ),
  stage2 AS (
    SELECT id, title, insights, sentiment(insights) AS tone FROM stage1
  )
  SELECT id, title, tone, enhance(insights) AS summary
  FROM stage2
  ORDER BY tone, id
) TO 'out/articles_pipeline.json' STORED AS JSON;

SELECT tone, count(*) AS articles FROM 'out/articles_pipeline.json' GROUP BY tone ORDER BY tone;
