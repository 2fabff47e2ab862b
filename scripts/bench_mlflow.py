"""The Python side of scripts/bench-mlflow: MLflow's own client on the same workload.

Usage: python bench_mlflow.py <tracking_uri> <steps> <metrics>
Runs, each in its own experiment on the given server:
  - per-step `mlflow.log_metrics(dict, step=s)` (synchronous),
  - the same with `synchronous=False` (delivery time includes `flush_async_logging`),
  - `MlflowClient.log_batch` with 1000-metric batches.
Prints `RESULT <name> <value>` lines: points delivered per second, and the caller's median
cost per call in microseconds.
"""

import statistics
import sys
import time
import uuid

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric


def value(step: int, j: int) -> float:
    return step * 0.5 + j


def per_step(uri: str, steps: int, metrics: int, synchronous: bool) -> tuple[float, float]:
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"bench-py-{'sync' if synchronous else 'async'}-{uuid.uuid4().hex[:8]}")
    keys = [f"m{j:02d}" for j in range(metrics)]
    costs = []
    with mlflow.start_run():
        t0 = time.perf_counter()
        for s in range(steps):
            row = {k: value(s, j) for j, k in enumerate(keys)}
            c0 = time.perf_counter()
            mlflow.log_metrics(row, step=s, synchronous=synchronous)
            costs.append(time.perf_counter() - c0)
        if not synchronous:
            mlflow.flush_async_logging()
        total = time.perf_counter() - t0
    return steps * metrics / total, statistics.median(costs) * 1e6


def batched(uri: str, steps: int, metrics: int, batch: int = 1000) -> tuple[float, float]:
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(f"bench-py-batch-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp)
    ts = int(time.time() * 1000)
    points = [
        Metric(f"m{j:02d}", value(s, j), ts, s) for s in range(steps) for j in range(metrics)
    ]
    costs = []
    t0 = time.perf_counter()
    for i in range(0, len(points), batch):
        c0 = time.perf_counter()
        client.log_batch(run.info.run_id, metrics=points[i : i + batch])
        costs.append(time.perf_counter() - c0)
    total = time.perf_counter() - t0
    client.set_terminated(run.info.run_id)
    return len(points) / total, statistics.median(costs) * 1e6


def _batched_after(barrier, uri: str, steps: int, metrics: int, out) -> None:
    """One of the ceiling's clients: its own run, 1000-metric batches, started together."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(f"bench-py-ceiling-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp)
    ts = int(time.time() * 1000)
    points = [
        Metric(f"m{j:02d}", value(s, j), ts, s) for s in range(steps) for j in range(metrics)
    ]
    barrier.wait()
    t0 = time.time()
    for i in range(0, len(points), 1000):
        client.log_batch(run.info.run_id, metrics=points[i : i + 1000])
    out.put((t0, time.time(), len(points)))
    client.set_terminated(run.info.run_id)


def ceiling(uri: str, steps: int, metrics: int, clients: int = 2) -> float:
    """The server's ceiling: `clients` Python processes calling `log_batch` at once (each
    its own run, the same workload each); points per second over the wall time of both."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(clients)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_batched_after, args=(barrier, uri, steps, metrics, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    spans = [out.get() for _ in procs]
    for p in procs:
        p.join()
    start = min(s[0] for s in spans)
    end = max(s[1] for s in spans)
    return sum(s[2] for s in spans) / (end - start)


def main() -> None:
    uri, steps, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for name, (rate, cost) in [
        ("py_sync", per_step(uri, steps, metrics, True)),
        ("py_async", per_step(uri, steps, metrics, False)),
        ("py_log_batch", batched(uri, steps, metrics)),
    ]:
        print(f"RESULT mlflow_{name}_points_per_s {rate:.0f}")
        print(f"RESULT mlflow_{name}_call_median_us {cost:.1f}")
        sys.stdout.flush()
    print(f"RESULT mlflow_py_two_clients_points_per_s {ceiling(uri, steps, metrics):.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
