"""Airflow DAG running a blossom SQL pipeline (the seed guide's orchestration pattern).

The first task runs `blossom -f ... --report ...`; what its exit code means:

  0  success
  1  a query failed (provider down after retries, bad input): worth a retry
  2  usage error (bad flag or setting): fix the DAG, retrying will not help
  3  more rows failed than --max-failed-rows: look at the report before rerunning

The report (JSON: status, exit_code, per-statement timing, AI metrics, errors) is pushed
to XCom by a second task for dashboards and alerts.

Copy examples/sql/multi_stage.sql to PIPELINE_DIR and set POLLINATIONS_API_KEY in the
worker's environment (or an Airflow connection exported as an environment variable).
"""

import json
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG
from airflow.exceptions import AirflowFailException
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator

PIPELINE_DIR = "/opt/blossom/pipelines"
REPORT = "/opt/blossom/reports/articles_{{ ds_nodash }}.json"

# Exit code 1 fails this task, so Airflow retries it. Codes 2 and 3 are not worth a
# retry: the task succeeds and leaves the verdict to the report check below, which fails
# hard (AirflowFailException skips the retries).
RUN_PIPELINE = f"""
blossom -q -f {PIPELINE_DIR}/multi_stage.sql --report {REPORT} --max-failed-rows 10
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
    run_pipeline = BashOperator(task_id="run_pipeline", bash_command=RUN_PIPELINE)
    report = PythonOperator(
        task_id="publish_report",
        python_callable=publish_report,
        op_kwargs={"report_path": REPORT},
    )
    run_pipeline >> report
