"""Run the benchmark and write ``bench/results.json``, ``BENCHMARKS.md`` and the plots.

    python -m bench.run [--server-url postgresql+asyncpg://postgres@127.0.0.1/postgres]
                        [--quick] [--phases e2e,ingest,dispatch,dlr,memory]

Starts, on loopback and a database of its own (dropped at the end): the fake OVHcloud
API, smsgateway's API (``serve --no-worker --workers N``), ``smsgateway worker``
processes and the baseline app (``bench/baseline_app.py``), and drives them with wrk.
Each phase is bounded in time; see the README's "Benchmarks".
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import report
from bench.harness import (
    KEYS,
    ROOT,
    SERVICE,
    Stack,
    create_database,
    drop_database,
    free_port,
    machine,
    sql,
    wait_ok,
    wrk,
    wrk_requests,
)

RESULTS = ROOT / "bench" / "results.json"
CALLBACK_TOKEN = "bench-callback-token"  # noqa: S105 - a local, throwaway value


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_id() -> str:
    """A new event-id prefix for each wrk run: ids never repeat, so nothing is a replay."""
    return secrets.token_hex(6)


class Bench:
    def __init__(self, args: argparse.Namespace, database_url: str, logs: Path) -> None:
        self.args = args
        self.db = database_url
        self.api_port, self.fake_port, self.base_port = free_port(), free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.fake = f"http://127.0.0.1:{self.fake_port}"
        self.baseline = f"http://127.0.0.1:{self.base_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "WEB_"))}
        env.update(
            SMSGW_DATABASE_URL=database_url,
            SMSGW_DATABASE_POOL_SIZE=str(args.pool_size),
            SMSGW_PROVIDER="ovh",
            SMSGW_OVH_ENDPOINT=f"{self.fake}/1.0",
            SMSGW_OVH_APPLICATION_KEY=KEYS["application_key"],
            SMSGW_OVH_APPLICATION_SECRET=KEYS["application_secret"],
            SMSGW_OVH_CONSUMER_KEY=KEYS["consumer_key"],
            SMSGW_OVH_SERVICE_NAME=SERVICE,
            SMSGW_CALLBACK_TOKEN=CALLBACK_TOKEN,
            SMSGW_REQUIRE_VERIFIED_PHONE="false",
            # OVHcloud's fair use (60 calls a minute) would be all we measured.
            SMSGW_PROVIDER_CALLS_PER_MINUTE="0",
            SMSGW_LOG_LEVEL=args.log_level,
            SMSGW_LOG_FORMAT="json",
            BENCH_DATABASE_URL=database_url,
            BENCH_POOL_SIZE=str(args.pool_size),
        )
        self.stack = Stack(logs=logs, env=env)
        self.settings = {
            "api_processes": args.workers,
            "pool_size_per_process": args.pool_size,
            "worker_concurrency": 8,
            "worker_batch_size": 50,
            "log": f"{args.log_level} json",
            "uvicorn": "uvloop + httptools",
            "wrk": "1 thread, keep-alive",
            "run_seconds": args.seconds,
            "repetitions": args.repeat,
        }
        self.api_key = ""
        self.unlimited_key = ""
        self.memory_samples: list[dict[str, Any]] = []  # kept if the run is interrupted

    # -- processes ------------------------------------------------------------------------

    def start_fake(self, *, callback: bool) -> None:
        args = ["-m", "smsgateway.testing.fake_ovh", "--port", str(self.fake_port)]
        args += ["--service-name", SERVICE, "--log-level", "warning", "--dlr-delay", "0.2"]
        for option, value in KEYS.items():
            args += ["--" + option.replace("_", "-"), value]
        if callback:
            args += ["--callback-url", f"{self.api}/v1/providers/ovh/{CALLBACK_TOKEN}/dlr"]
        process = self.stack.start("fake_ovh", args)
        wait_ok(f"{self.fake}/1.0/auth/time", process)

    def provider_latency(self, ms: int) -> None:
        httpx.post(f"{self.fake}/_control/faults", json={"latency_ms": ms}).raise_for_status()

    def fake_accepted(self) -> int:
        accepted: int = httpx.get(f"{self.fake}/_control/stats").json()["accepted"]
        return accepted

    def start_api(self, *, in_process_worker: bool = False) -> None:
        args = ["-m", "smsgateway", "serve", "--port", str(self.api_port)]
        args += ["--workers", str(1 if in_process_worker else self.args.workers)]
        if not in_process_worker:
            args.append("--no-worker")
        wait_ok(f"{self.api}/readyz", self.stack.start("api", args))

    def start_workers(self, count: int) -> None:
        for index in range(count):
            self.stack.start(f"worker{index}", ["-m", "smsgateway", "worker"])

    def stop_workers(self) -> None:
        for name in [n for n in self.stack.processes if n.startswith("worker")]:
            self.stack.stop(name)

    def worker_processes(self) -> list[Any]:
        return [p for n, p in self.stack.processes.items() if n.startswith("worker")]

    def setup(self) -> None:
        import subprocess
        import sys

        def smsgateway(*command: str) -> str:
            done = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "smsgateway", *command],
                env={**self.stack.env},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            return done.stdout

        smsgateway("migrate")
        # A client with a quota (its balance is reserved by every event), as in production.
        created = smsgateway("clients", "create", "--name", "bench", "--quota", "1e9")
        self.api_key = json.loads(created)["api_key"]
        # Without a quota, for the memory run: no balance row to queue on (see BENCHMARKS.md).
        created = smsgateway("clients", "create", "--name", "bench-unlimited")
        self.unlimited_key = json.loads(created)["api_key"]

    # -- phases ---------------------------------------------------------------------------

    def e2e(self) -> dict[str, Any]:
        """Idle system: one event at a time; from the 202 to the provider call."""
        self.start_fake(callback=False)
        results: dict[str, Any] = {}
        for mode in ("separate_worker", "in_process_worker"):
            self.stop_workers()
            self.start_api(in_process_worker=mode == "in_process_worker")
            if mode == "separate_worker":
                self.start_workers(1)
                time.sleep(3)  # the worker is LISTENing
            results[mode] = self._e2e_run(self.args.e2e_events, mode)
        self.stop_workers()
        self.stack.stop("api")
        return results

    def _e2e_run(self, count: int, mode: str) -> dict[str, Any]:
        accepted: dict[str, float] = {}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(timeout=10) as http:
            for index in range(count):
                body = report.booking_event(f"e2e-{mode}-{index}", index)
                response = http.post(f"{self.api}/v1/booking-events", json=body, headers=headers)
                response.raise_for_status()
                accepted[response.json()["messages"][0]["id"]] = time.time()
                time.sleep(0.05)
            deadline = time.monotonic() + 30
            rows: list[Any] = []
            while time.monotonic() < deadline:
                rows = sql(
                    self.db,
                    "SELECT m.id, extract(epoch FROM min(a.started_at)),"
                    " extract(epoch FROM m.created_at), extract(epoch FROM m.submitted_at)"
                    " FROM messages m JOIN send_attempts a ON a.message_id = m.id"
                    " WHERE m.event_id LIKE :prefix AND m.submitted_at IS NOT NULL"
                    " GROUP BY m.id",
                    prefix=f"e2e-{mode}-%",
                )
                if len(rows) >= count:
                    break
                time.sleep(0.5)
        to_call = [(float(r[1]) - accepted[r[0]]) * 1000 for r in rows]
        created_to_call = [(float(r[1]) - float(r[2])) * 1000 for r in rows]
        to_submitted = [(float(r[3]) - accepted[r[0]]) * 1000 for r in rows]
        return {
            "events": count,
            "measured": len(rows),
            "accepted_to_call_ms": report.percentiles(to_call),
            "created_to_call_ms": report.percentiles(created_to_call),
            "accepted_to_submitted_ms": report.percentiles(to_submitted),
        }

    def ingest(self) -> dict[str, Any]:
        """Booking events per second and latency, next to the baseline, same run."""
        self.stop_workers()
        self.start_api()
        import asyncio

        from bench.baseline_app import create_table

        asyncio.run(create_table(self.db))
        base_args = ["-m", "uvicorn", "bench.baseline_app:app", "--port", str(self.base_port)]
        base_args += ["--workers", str(self.args.workers), "--loop", "uvloop"]
        base_args += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        wait_ok(f"{self.baseline}/ping", self.stack.start("baseline", base_args))

        ceiling = wrk(f"{self.baseline}/ping", "plain.lua", connections=64, seconds=5)
        wrk(
            f"{self.api}/",
            "booking_events.lua",
            connections=8,
            seconds=3,
            args=[self.api_key, run_id()],
        )
        wrk(f"{self.baseline}/", "baseline.lua", connections=8, seconds=3, args=[run_id()])
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {"service": {}, "baseline": {}}
        for connections in self.args.concurrency:
            for repetition in range(self.args.repeat):
                order = ["baseline", "service"] if repetition % 2 == 0 else ["service", "baseline"]
                for target in order:
                    process = self.stack.processes["api" if target == "service" else "baseline"]
                    app_cpu, db_cpu = cpu_seconds(process.tree()), self._db_cpu()
                    if target == "service":
                        result = wrk(
                            f"{self.api}/",
                            "booking_events.lua",
                            connections=connections,
                            seconds=self.args.seconds,
                            args=[self.api_key, run_id()],
                        )
                    else:
                        result = wrk(
                            f"{self.baseline}/",
                            "baseline.lua",
                            connections=connections,
                            seconds=self.args.seconds,
                            args=[run_id()],
                        )
                    answered = max(1, result.requests - result.non_2xx)
                    measured = result.as_dict()
                    # CPU per request is what a noisy, shared machine distorts least.
                    measured["app_cpu_ms"] = (
                        (cpu_seconds(process.tree()) - app_cpu) * 1e3 / answered
                    )
                    measured["db_cpu_ms"] = (self._db_cpu() - db_cpu) * 1e3 / answered
                    runs[target].setdefault(connections, []).append(measured)
                    print(
                        f"ingest {target} c={connections}: {result.rps:.0f}/s "
                        f"p50={result.p50_ms:.1f} p99={result.p99_ms:.1f} ms",
                        flush=True,
                    )
        self.stack.stop("baseline")
        return {"generator_ceiling": ceiling.as_dict(), "runs": runs}

    def _db_cpu(self) -> float:
        """CPU seconds of the PostgreSQL backends serving this run's database."""
        name = self.db.rsplit("/", 1)[-1]
        backends = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if cmdline.startswith("postgres:") and f" {name} " in cmdline:
                backends.append(proc)
        return cpu_seconds(backends)

    def _queued(self) -> int:
        [(count,)] = sql(
            self.db, "SELECT count(*) FROM messages WHERE status = 'queued' AND due_at <= now()"
        )
        return int(count)

    def _top_up(self, needed: int) -> None:
        """Make ``needed`` messages due, cloning a stored one in SQL (the API is not measured
        here): each clone has its own id, tag and text, so each is one provider call."""
        missing = needed - self._queued()
        if missing <= 0:
            return
        columns = [
            row[0]
            for row in sql(
                self.db,
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'messages' ORDER BY ordinal_position",
            )
        ]
        fresh = {
            "id": "gen_random_uuid()::text",
            "provider_tag": "'sgw' || substr(md5(random()::text || g::text), 1, 17)",
            "text": "m.text || ' #' || g::text",
            "status": "'queued'",
            "due_at": "now()",
            "created_at": "now()",
            "updated_at": "now()",
            "attempts": "0",
            "event_id": "NULL",
        }
        for column in ("lease_owner", "lease_until", "provider_id", "submitted_at", "final_at"):
            fresh[column] = "NULL"
        select = ", ".join(fresh.get(column, f"m.{column}") for column in columns)
        sql(
            self.db,
            f"INSERT INTO messages ({', '.join(columns)}) SELECT {select}"  # noqa: S608
            " FROM (SELECT * FROM messages WHERE event_type = 'booking.requested' LIMIT 1) m,"
            " generate_series(1, :n) g",
            n=missing,
        )

    def dispatch(self) -> dict[str, Any]:
        """SMS handed to the fake OVHcloud per second, each call taking 50 ms."""
        self.start_fake(callback=False)
        self.provider_latency(self.args.provider_latency_ms)
        results: dict[str, Any] = {}
        latency_s = self.args.provider_latency_ms / 1000
        for workers in self.args.dispatch_workers:
            bound = workers * 8 / latency_s
            self._top_up(int(bound * (self.args.dispatch_seconds + 5)))
            self.start_workers(workers)
            samples: list[tuple[float, int]] = []
            for proc in self.worker_processes():
                proc.ps.cpu_percent(None)
            started = time.monotonic()
            while time.monotonic() - started < self.args.dispatch_seconds:
                samples.append((time.monotonic() - started, self.fake_accepted()))
                time.sleep(0.5)
            cpu = [proc.ps.cpu_percent(None) for proc in self.worker_processes()]
            self.stop_workers()
            steady = [s for s in samples if s[0] >= 3.0]
            rate = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
            results[str(workers)] = {
                "sms_per_second": round(rate, 1),
                "bound_per_second": round(bound, 1),
                "of_bound": round(rate / bound, 3),
                "worker_cpu_percent": [round(c, 1) for c in cpu],
            }
            print(f"dispatch {workers} workers: {rate:.0f}/s (bound {bound:.0f})", flush=True)
        self.provider_latency(0)
        return {"provider_latency_ms": self.args.provider_latency_ms, "workers": results}

    def delivery_reports(self, logs: Path) -> dict[str, Any]:
        rows = sql(
            self.db,
            "SELECT provider_id FROM messages WHERE provider_id IS NOT NULL LIMIT 20000",
        )
        ids_file = logs / "sms_ids.txt"
        ids_file.write_text("\n".join(str(r[0]) for r in rows) + "\n")
        runs: dict[int, list[dict[str, Any]]] = {}
        for connections in (8, 32):
            for _ in range(self.args.repeat):
                result = wrk(
                    f"{self.api}/",
                    "delivery_reports.lua",
                    connections=connections,
                    seconds=self.args.seconds,
                    args=[CALLBACK_TOKEN, str(ids_file)],
                )
                runs.setdefault(connections, []).append(result.as_dict())
                print(f"dlr c={connections}: {result.rps:.0f}/s", flush=True)
        return {"sms_ids": len(rows), "runs": runs}

    def memory(self) -> dict[str, Any]:
        """RSS of the API and worker processes while 100,000 messages go through."""
        self.stop_workers()
        self.start_fake(callback=True)
        self.start_api()
        self.start_workers(self.args.memory_workers)
        [(before,)] = sql(self.db, "SELECT count(*) FROM messages")
        samples = self.memory_samples
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while True:
                try:
                    [(total, queued)] = sql(
                        self.db,
                        "SELECT count(*), count(*) FILTER (WHERE status = 'sending'"
                        " OR (status = 'queued' AND due_at <= now())) FROM messages",
                    )
                except Exception as exc:  # a full server must not end the sampling
                    print(f"memory sample without counts: {type(exc).__name__}", flush=True)
                    if stop.wait(self.args.memory_sample_seconds):
                        return
                    continue
                api = self.stack.processes["api"].rss_mb()
                samples.append(
                    {
                        "t": round(time.monotonic() - started, 1),
                        "messages": int(total) - int(before),
                        "unsent": int(queued),
                        "api_rss_mb": [round(x, 1) for x in api],
                        "worker_rss_mb": [
                            round(x, 1) for p in self.worker_processes() for x in p.rss_mb()
                        ],
                        "fake_accepted": self.fake_accepted(),
                    }
                )
                if stop.wait(self.args.memory_sample_seconds):
                    return

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        count = self.args.memory_messages
        result = wrk_requests(
            f"{self.api}/",
            "messages.lua",
            connections=16,
            count=count,
            args=[self.unlimited_key, run_id()],
            max_seconds=self.args.memory_max_seconds,
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and self._unsent() > 0:
            time.sleep(2)
        time.sleep(self.args.memory_sample_seconds)
        stop.set()
        thread.join()
        self.stop_workers()
        return {"events": count, "ingest": result.as_dict(), "samples": samples}

    def _unsent(self) -> int:
        [(count,)] = sql(
            self.db,
            "SELECT count(*) FROM messages WHERE status = 'sending'"
            " OR (status = 'queued' AND due_at <= now())",
        )
        return int(count)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--server-url", default="postgresql+asyncpg://postgres@127.0.0.1/postgres")
    parser.add_argument("--phases", default="e2e,ingest,dispatch,dlr,memory")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--e2e-events", type=int, default=200)
    parser.add_argument("--provider-latency-ms", type=int, default=50)
    parser.add_argument(
        "--dispatch-workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--dispatch-seconds", type=float, default=20.0)
    parser.add_argument("--memory-messages", type=int, default=100_000)
    parser.add_argument("--memory-workers", type=int, default=2)
    parser.add_argument("--memory-max-seconds", type=float, default=1800.0)
    parser.add_argument("--memory-sample-seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every phase")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-report", action="store_true", help="write the JSON only")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.seconds, args.repeat = [1, 8], 3.0, 1
        args.e2e_events, args.dispatch_seconds, args.memory_messages = 20, 6.0, 1000
        args.memory_sample_seconds = 1.0
    phases = args.phases.split(",")

    def interrupted(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # so that the processes stop and the results are kept

    signal.signal(signal.SIGTERM, interrupted)
    database_url = create_database(args.server_url)
    logs = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    print(f"database {database_url.rsplit('/', 1)[-1]}, logs in {logs}", flush=True)
    bench = Bench(args, database_url, logs)
    results: dict[str, Any] = {"machine": machine(database_url), "settings": bench.settings}
    try:
        bench.setup()
        bench.start_fake(callback=False)
        if "e2e" in phases:
            results["e2e"] = bench.e2e()
        bench.start_api()
        if "ingest" in phases:
            results["ingest"] = bench.ingest()
        if "dispatch" in phases:
            results["dispatch"] = bench.dispatch()
        if "dlr" in phases:
            results["delivery_reports"] = bench.delivery_reports(logs)
        if "memory" in phases:
            results["memory"] = bench.memory()
    finally:
        if "memory" not in results and bench.memory_samples:
            results["memory_interrupted"] = {"samples": bench.memory_samples}
        bench.stack.close()
        results["machine"]["load_after"] = os.getloadavg()
        args.output.write_text(json.dumps(results, indent=1, default=str))
        drop_database(database_url)
    if not args.no_report:
        report.write(results)
    print(f"wrote {args.output}" + ("" if args.no_report else ", BENCHMARKS.md and the plots"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
