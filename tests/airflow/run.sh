#!/usr/bin/env bash
# Runs examples/airflow_dag.py in a real Airflow 3 (pip install apache-airflow, airflow
# db migrate, airflow dags test), with the bundled simulator (--simulate) as the
# provider, and checks that both tasks succeeded and that the report's totals reached
# XCom. Everything lives in a temporary directory (AIRFLOW_HOME included).
#
#   tests/airflow/run.sh            AIRFLOW_VENV=/path reuses a virtualenv with Airflow
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
cargo build --locked --bin blossom
bin="${CARGO_TARGET_DIR:-$root/target}/debug/blossom"

venv="${AIRFLOW_VENV:-$work/venv}"
if [ ! -x "$venv/bin/airflow" ]; then
  python3.11 -m venv "$venv"
  "$venv/bin/pip" install -q "apache-airflow==3.*"
fi
"$venv/bin/airflow" version

export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$work/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
mkdir -p "$AIRFLOW__CORE__DAGS_FOLDER" "$work/pipeline/data"
cp examples/airflow_dag.py "$AIRFLOW__CORE__DAGS_FOLDER/"
cp examples/sql/multi_stage.sql "$work/pipeline/"
cp data/articles.json "$work/pipeline/data/"

export BLOSSOM_PIPELINE_DIR="$work/pipeline"
export BLOSSOM_REPORT_DIR="$work/reports"
export BLOSSOM_BIN="$bin"
export BLOSSOM_ARGS="--simulate"
# Run from elsewhere: the DAG, not the caller's directory, says where the files are.
cd "$work"

"$venv/bin/airflow" db migrate > "$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; exit 1; }
"$venv/bin/airflow" dags test blossom_articles_pipeline 2026-01-02 > "$work/dags_test.log" 2>&1 || {
  cat "$work/dags_test.log"; exit 1; }

# Both tasks succeeded, and publish_report's return value is in XCom.
"$venv/bin/python" - "$AIRFLOW_HOME/airflow.db" "$work" <<'PY'
import json, sqlite3, sys
from pathlib import Path

db = sqlite3.connect(sys.argv[1])
states = dict(db.execute(
    "SELECT task_id, state FROM task_instance WHERE dag_id = 'blossom_articles_pipeline'"))
print("task states:", states)
assert states == {"run_pipeline": "success", "publish_report": "success"}, states
rows = db.execute(
    "SELECT value FROM xcom WHERE dag_id = 'blossom_articles_pipeline' "
    "AND task_id = 'publish_report' AND key = 'return_value'").fetchall()
assert len(rows) == 1, rows
value = rows[0][0]
totals = json.loads(value if isinstance(value, str) else value.decode())
if isinstance(totals, str):
    totals = json.loads(totals)
print("XCom totals:", totals)
report = json.loads(next(Path(sys.argv[2], "reports").glob("articles_*.json")).read_text())
assert totals["requests"] == report["ai"]["requests"] > 0, (totals, report["ai"])
assert totals["failed_rows"] == 0, totals
assert totals["tokens"] > 0, totals
out = Path(sys.argv[2], "pipeline", "out", "articles_pipeline.json")
assert out.exists(), out
print(f"airflow: 2 passed, 0 failed ({totals['requests']} requests, {out} written)")
PY
