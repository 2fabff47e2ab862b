"""Reads one MLflow run with MLflow's own Python client (the reader MLflow users have).

Usage: python mlflow_read.py <tracking_uri> <run_id>
Prints JSON: {"status", "start_time", "end_time", "params", "tags",
"metrics": {key: [[step, value], ...]}} with the full history of every metric, in the
server's order; non-finite values are printed as the strings "nan", "inf", "-inf".
"""

import json
import math
import sys

from mlflow.tracking import MlflowClient


def main() -> None:
    uri, run_id = sys.argv[1], sys.argv[2]
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        history = client.get_metric_history(run_id, key)
        metrics[key] = [
            [m.step, m.value if math.isfinite(m.value) else str(m.value)] for m in history
        ]
    print(
        json.dumps(
            {
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "params": run.data.params,
                "tags": run.data.tags,
                "metrics": metrics,
            }
        )
    )


if __name__ == "__main__":
    main()
