"""Airflow 3 DAG running a blossom SQL pipeline (the seed guide's orchestration pattern).

The first task runs `blossom -f multi_stage.sql --report ...` in the pipeline directory;
what its exit code means:

  0  success
  1  a query failed (provider down after retries, bad input): worth a retry
  2  usage error (bad flag or setting): fix the DAG, retrying will not help
  3  more rows failed than --max-failed-rows: look at the report before rerunning

The report (JSON: status, exit_code, per-statement timing, AI metrics, errors) is read
by a second task, whose return value (the run's totals) goes to XCom for dashboards and
alerts.

Airflow runs a BashOperator in a temporary directory of its own, so the task runs in
BLOSSOM_PIPELINE_DIR (its `cwd`), where examples/sql/multi_stage.sql reads
`data/articles.json` and writes `out/`. Set in the worker's environment:

  BLOSSOM_PIPELINE_DIR  the pipeline directory: multi_stage.sql, data/articles.json
                        (default /opt/blossom/pipelines)
  BLOSSOM_REPORT_DIR    where the reports go (default /opt/blossom/reports)
  BLOSSOM_BIN           the blossom executable (default: blossom on PATH)
  BLOSSOM_ARGS          extra arguments, e.g. --simulate to run against the bundled
                        simulator instead of a provider
  POLLINATIONS_API_KEY  (or BLOSSOM_API_KEY and the BLOSSOM_PROVIDER settings) for a
                        real provider

tests/airflow/run.sh runs this DAG with `airflow dags test` in a real Airflow 3.
"""

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.exceptions import AirflowFailException
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

PIPELINE_DIR = os.environ.get("BLOSSOM_PIPELINE_DIR", "/opt/blossom/pipelines")
REPORT_DIR = os.environ.get("BLOSSOM_REPORT_DIR", "/opt/blossom/reports")
REPORT = REPORT_DIR + "/articles_{{ ds_nodash }}.json"

# Exit code 1 fails this task, so Airflow retries it. Codes 2 and 3 are not worth a
# retry: the task succeeds and leaves the verdict to the report check below, which fails
# hard (AirflowFailException skips the retries).
RUN_PIPELINE = f"""
set -u
mkdir -p out "{REPORT_DIR}"
"${{BLOSSOM_BIN:-blossom}}" ${{BLOSSOM_ARGS:-}} -q -f multi_stage.sql --report "{REPORT}" --max-failed-rows 10
code=$?
if [ "$code" -eq 2 ] || [ "$code" -eq 3 ]; then
  echo "blossom exited $code: see the report; not retrying" >&2
  exit 0
fi
exit $code
"""


def publish_report(report_path: str, **_context) -> dict:
    """Reads the run report, fails hard on a failed run, returns its totals (to XCom)."""
    report = json.loads(Path(report_path).read_text())
    if report["status"] != "ok":
        raise AirflowFailException(
            f"blossom exited {report['exit_code']}: {report['error']}"
        )
    return {
        "requests": report["ai"]["requests"],
        "failed_rows": report["ai"]["failed_rows"],
        "tokens": report["ai"]["prompt_tokens"] + report["ai"]["completion_tokens"],
        "elapsed_ms": report["elapsed_ms"],
    }


with DAG(
    dag_id="blossom_articles_pipeline",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["blossom", "llm"],
) as dag:
    run_pipeline = BashOperator(
        task_id="run_pipeline",
        bash_command=RUN_PIPELINE,
        cwd=PIPELINE_DIR,
        # The task's environment plus the worker's (BLOSSOM_*, keys).
        append_env=True,
    )
    report = PythonOperator(
        task_id="publish_report",
        python_callable=publish_report,
        op_kwargs={"report_path": REPORT},
    )
    run_pipeline >> report
