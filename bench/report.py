"""``BENCHMARKS.md`` and the plots, from ``bench/results.json`` (``python -m bench.report``).

Only the part between the ``figures`` markers is rewritten: the analysis below it is
written by hand.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = ROOT / "BENCHMARKS.md"
INGEST_PNG = ROOT / "bench" / "ingest.png"
MEMORY_PNG = ROOT / "bench" / "memory.png"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def booking_event(event_id: str, index: int) -> dict[str, Any]:
    """The body wrk's ``booking_events.lua`` sends, for Python callers."""
    return {
        "event_id": event_id,
        "type": "booking.requested",
        "booking": {
            "id": f"b-{event_id}",
            "title": f"Kayak #{index}",
            "starts_at": "2026-12-01T09:00:00+01:00",
            "expires_at": "2026-11-22T09:00:00+01:00",
        },
        "asker": {"user_ref": f"u-a{index}", "name": "Anna", "phone": "+33601020304"},
        "offeror": {
            "user_ref": f"u-o{index}",
            "name": "Marc",
            "phone": f"+336{10000000 + index:08d}",
            "language": "en",
        },
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def ingest_rows(ingest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for connections, service_runs in sorted(
        ingest["runs"]["service"].items(), key=lambda item: int(item[0])
    ):
        base_runs = ingest["runs"]["baseline"][connections]
        row: dict[str, Any] = {"connections": int(connections)}
        for name, runs in (("service", service_runs), ("baseline", base_runs)):
            for key in ("rps", "p50_ms", "p95_ms", "p99_ms"):
                row[f"{name}_{key}"] = _median(runs, key)
            row[f"{name}_errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in runs)
            row[f"{name}_all_rps"] = [r["rps"] for r in runs]
            if all("app_cpu_ms" in r for r in runs):
                row[f"{name}_app_cpu_ms"] = _median(runs, "app_cpu_ms")
                row[f"{name}_db_cpu_ms"] = _median(runs, "db_cpu_ms")
        row["ratio"] = row["service_rps"] / row["baseline_rps"] if row["baseline_rps"] else 0.0
        rows.append(row)
    return rows


def _machine(results: dict[str, Any]) -> list[str]:
    m, s = results["machine"], results["settings"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return [
        f"Run on {m['date']} — commit {m['commit']}"
        + (f" with {m['uncommitted_files']} uncommitted files" if m["uncommitted_files"] else ""),
        "",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"load average before {tuple(round(x, 2) for x in m['load_before'])}, "
        f"after {tuple(round(x, 2) for x in m.get('load_after', ()))}",
        f"- **Software**: Python {m['python']}, PostgreSQL {m['postgresql']} "
        f"(max_connections {m['postgresql_max_connections']}), {m['wrk']}; {packages}",
        f"- **Settings**: {s['api_processes']} API processes (`serve --no-worker --workers "
        f"{s['api_processes']}`, {s['uvicorn']}) and the same for the baseline; pool of "
        f"{s['pool_size_per_process']} (+ as many overflow) connections per process; logs "
        f"{s['log']}; dispatcher concurrency {s['worker_concurrency']}, batch "
        f"{s['worker_batch_size']}; load from {s['wrk']}, {s['run_seconds']:g} s a run, "
        f"median of {s['repetitions']} runs, baseline and service alternating. Everything "
        "(load generator, PostgreSQL, fake OVHcloud, API, workers) shares the machine.",
    ]


def _ingest(results: dict[str, Any]) -> list[str]:
    ingest = results.get("ingest")
    if not ingest:
        return []
    ceiling = ingest["generator_ceiling"]
    lines = [
        "",
        "## Ingest: `POST /v1/booking-events`",
        "",
        "Each request is a new `booking.requested` event (its own event id, title and "
        "offeror number): it stores the event, the offeror's SMS due now (a text of its "
        "own) and the `expiring_soon` reminder scheduled for later, reserves credits and "
        "notifies the workers, all committed before the `202`. The "
        "baseline is `bench/baseline_app.py`: a bare FastAPI endpoint on the same stack "
        "doing one `INSERT` per request into the same database.",
        "",
        "| concurrency | service req/s | baseline req/s | ratio | service p50 / p95 / p99 ms "
        "| baseline p50 / p95 / p99 ms | errors (service, baseline) |",
        "|---:|---:|---:|---:|---|---|---|",
    ]
    for row in ingest_rows(ingest):
        lines.append(
            f"| {row['connections']} | {row['service_rps']:.0f} | {row['baseline_rps']:.0f} "
            f"| **{row['ratio']:.0%}** | {row['service_p50_ms']:.1f} / "
            f"{row['service_p95_ms']:.1f} / {row['service_p99_ms']:.1f} "
            f"| {row['baseline_p50_ms']:.1f} / {row['baseline_p95_ms']:.1f} / "
            f"{row['baseline_p99_ms']:.1f} | {row['service_errors']}, {row['baseline_errors']} |"
        )
    cpu_rows = [r for r in ingest_rows(ingest) if "service_app_cpu_ms" in r]
    if cpu_rows:
        lines += [
            "",
            "CPU time per request (median; API or baseline processes, and the PostgreSQL "
            "backends of this run's database), which the machine's other load distorts "
            "far less than throughput:",
            "",
            "| concurrency | service app / db ms | baseline app / db ms | service / baseline |",
            "|---:|---|---|---:|",
        ]
        for r in cpu_rows:
            service = r["service_app_cpu_ms"] + r["service_db_cpu_ms"]
            base = r["baseline_app_cpu_ms"] + r["baseline_db_cpu_ms"]
            lines.append(
                f"| {r['connections']} | {r['service_app_cpu_ms']:.2f} / "
                f"{r['service_db_cpu_ms']:.2f} | {r['baseline_app_cpu_ms']:.2f} / "
                f"{r['baseline_db_cpu_ms']:.2f} | {service / base if base else 0:.1f}x |"
            )
    lines += [
        "",
        "Every run (req/s): "
        + "; ".join(
            f"c={r['connections']}: service {r['service_all_rps']}, "
            f"baseline {r['baseline_all_rps']}"
            for r in ingest_rows(ingest)
        ),
        "",
        f"Load generator ceiling in the same run (wrk, 1 thread, 64 connections, baseline's "
        f"`GET /ping`, no database): **{ceiling['rps']:.0f} req/s**, so the generator is not "
        "what limits the figures above.",
        "",
        f"![throughput and latency against concurrency](bench/{INGEST_PNG.name})",
    ]
    return lines


def _e2e(results: dict[str, Any]) -> list[str]:
    e2e = results.get("e2e")
    if not e2e:
        return []
    lines = [
        "",
        "## End-to-end latency on an idle system",
        "",
        "One event at a time (50 ms apart), provider answering at once. *Accepted*: the "
        "client has the `202`; *provider call*: the dispatcher starts the OVHcloud call "
        "(`send_attempts.started_at`); *created*: the message row's `created_at`.",
        "",
        "| set-up | events | accepted → provider call p50 / p95 / p99 ms "
        "| created → provider call p50 / p99 ms | accepted → submitted p50 / p99 ms |",
        "|---|---:|---|---|---|",
    ]
    names = {
        "separate_worker": "API + `smsgateway worker` (LISTEN/NOTIFY)",
        "in_process_worker": "`smsgateway serve` (in-process wake-up)",
    }
    for mode, run in e2e.items():
        a, c, s = (
            run["accepted_to_call_ms"],
            run["created_to_call_ms"],
            run["accepted_to_submitted_ms"],
        )
        if not a:
            lines.append(f"| {names.get(mode, mode)} | {run['events']} | no data | | |")
            continue
        lines.append(
            f"| {names.get(mode, mode)} | {run['measured']} | {a['p50']} / {a['p95']} / "
            f"{a['p99']} | {c['p50']} / {c['p99']} | {s['p50']} / {s['p99']} |"
        )
    return lines


def _dispatch(results: dict[str, Any]) -> list[str]:
    dispatch = results.get("dispatch")
    if not dispatch:
        return []
    latency = dispatch["provider_latency_ms"]
    lines = [
        "",
        f"## Dispatch: SMS handed to the fake OVHcloud, each call taking {latency} ms",
        "",
        "A backlog of queued messages (all different texts, so one SMS per call), "
        "`smsgateway worker` processes started on it, SMS counted by the fake over the "
        "steady part of the run. The bound is workers x concurrency (8) / provider latency.",
        "",
        "| workers | SMS/s | bound | of bound | worker CPU % |",
        "|---:|---:|---:|---:|---|",
    ]
    for workers, run in dispatch["workers"].items():
        lines.append(
            f"| {workers} | {run['sms_per_second']:.0f} | {run['bound_per_second']:.0f} | "
            f"{run['of_bound']:.0%} | {', '.join(str(c) for c in run['worker_cpu_percent'])} |"
        )
    return lines


def _dlr(results: dict[str, Any]) -> list[str]:
    dlr = results.get("delivery_reports")
    if not dlr:
        return []
    lines = [
        "",
        "## Delivery reports absorbed",
        "",
        f"`GET /v1/providers/ovh/{{token}}/dlr` for {dlr['sms_ids']} known SMS ids, every "
        "report new (its date differs), each stored, matched and applied.",
        "",
        "| concurrency | reports/s | p50 / p99 ms | errors |",
        "|---:|---:|---|---:|",
    ]
    for connections, runs in sorted(dlr["runs"].items(), key=lambda item: int(item[0])):
        lines.append(
            f"| {connections} | {_median(runs, 'rps'):.0f} | {_median(runs, 'p50_ms'):.1f} / "
            f"{_median(runs, 'p99_ms'):.1f} | "
            f"{sum(r['non_2xx'] + r['socket_errors'] for r in runs)} |"
        )
    return lines


def memory_summary(memory: dict[str, Any]) -> dict[str, Any]:
    samples = [s for s in memory["samples"] if s["api_rss_mb"]]

    def at(fraction: float) -> dict[str, Any]:
        target = fraction * samples[-1]["messages"]
        return min(samples, key=lambda s: abs(s["messages"] - target))

    return {"quarter": at(0.25), "end": samples[-1], "first": samples[0]}


def _memory(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory or not memory["samples"]:
        return []
    summary = memory_summary(memory)
    q, end = summary["quarter"], summary["end"]

    def fmt(values: list[float]) -> str:
        return ", ".join(f"{v:.0f}" for v in values) or "-"

    ingest = memory["ingest"]
    posted = ingest["requests"] - ingest["non_2xx"]

    def row(name: str, sample: dict[str, Any]) -> str:
        return (
            f"| {name} | {sample['messages']:,} | {sample.get('fake_accepted', 0):,} | "
            f"{sample['unsent']:,} | {fmt(sample['api_rss_mb'])} | "
            f"{fmt(sample['worker_rss_mb'])} |"
        )

    separate = results.get("memory_run")
    note = (
        [
            f"Measured in a run of its own started {separate['date']} (load average "
            f"before {tuple(round(x, 2) for x in separate['load_before'])}, after "
            f"{tuple(round(x, 2) for x in separate.get('load_after', ()))}).",
            "",
        ]
        if separate
        else []
    )
    return [
        "",
        f"## Memory while {posted:,} messages go through",
        "",
        *note,
        f"{posted:,} SMS posted to `POST /v1/messages` (each its own number and text; "
        f"{ingest['connections']} connections, {ingest['rps']:.0f} req/s while the workers "
        "send at the same time, provider answering at once) by a client without a quota; "
        "each goes to the fake OVHcloud, whose delivery report comes back to the API. RSS "
        "sampled every few seconds (API: uvicorn's supervisor, its resource tracker, then "
        "its worker processes).",
        "",
        "| moment | messages stored | SMS sent | due, unsent | API RSS MB | worker RSS MB |",
        "|---|---:|---:|---:|---|---|",
        row("first sample", summary["first"]),
        row("~25% of the events", q),
        row("last sample", end),
        "",
        f"![RSS against messages](bench/{MEMORY_PNG.name})",
    ]


def figures(results: dict[str, Any]) -> str:
    lines = [START, "", "# Benchmarks", ""]
    lines += _machine(results)
    for part in (_ingest, _e2e, _dispatch, _dlr, _memory):
        lines += part(results)
    lines += ["", END]
    return "\n".join(lines)


def plots(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ingest = results.get("ingest")
    if ingest:
        rows = ingest_rows(ingest)
        x = [r["connections"] for r in rows]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, style in (("service", "o-"), ("baseline", "s--")):
            left.plot(x, [r[f"{name}_rps"] for r in rows], style, label=name)
            right.plot(x, [r[f"{name}_p50_ms"] for r in rows], style, label=f"{name} p50")
            right.plot(
                x, [r[f"{name}_p99_ms"] for r in rows], style, alpha=0.5, label=f"{name} p99"
            )
        left.set(
            title="Throughput",
            xlabel="concurrent connections",
            ylabel="requests/s",
            xscale="log",
            ylim=(0, None),
        )
        right.set(
            title="Latency",
            xlabel="concurrent connections",
            ylabel="ms",
            xscale="log",
            yscale="log",
        )
        for axis in (left, right):
            axis.set_xticks(x, [str(c) for c in x])
            axis.grid(alpha=0.3)
            axis.legend()
        fig.suptitle(
            f"POST /v1/booking-events vs one-INSERT baseline ({results['machine']['date']})"
        )
        fig.tight_layout()
        fig.savefig(INGEST_PNG, dpi=110)
        plt.close(fig)

    memory = results.get("memory")
    if memory and memory["samples"]:
        samples = [s for s in memory["samples"] if s["api_rss_mb"]]
        fig, axis = plt.subplots(figsize=(8, 4))
        xs = [s["messages"] for s in samples]
        for index in range(max(len(s["api_rss_mb"]) for s in samples)):
            axis.plot(
                xs,
                [s["api_rss_mb"][index] if index < len(s["api_rss_mb"]) else None for s in samples],
                label="API supervisor" if index == 0 else f"API process {index}",
            )
        for index in range(max((len(s["worker_rss_mb"]) for s in samples), default=0)):
            axis.plot(
                xs,
                [
                    s["worker_rss_mb"][index] if index < len(s["worker_rss_mb"]) else None
                    for s in samples
                ],
                "--",
                label=f"worker {index + 1}",
            )
        axis.set(
            title="Resident memory while messages go through",
            xlabel="messages created",
            ylabel="RSS (MB)",
            ylim=(0, None),
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(MEMORY_PNG, dpi=110)
        plt.close(fig)


def write(results: dict[str, Any]) -> None:
    block = figures(results)
    if MARKDOWN.exists() and START in (current := MARKDOWN.read_text()) and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1]
        MARKDOWN.write_text(head + block + tail)
    else:
        MARKDOWN.write_text(block + "\n\n## Analysis\n\n(to be written)\n")
    plots(results)


if __name__ == "__main__":
    write(json.loads((ROOT / "bench" / "results.json").read_text()))
