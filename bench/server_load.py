"""Load test of ``outcore serve``: 1, 4 and 8 concurrent RLM requests over real HTTP.

Why over HTTP against a separate process: what a client sees (latency, throughput, errors under concurrency)
includes admission, streaming and the models shared between runs, which no in-process benchmark measures. The
script starts ``outcore serve`` on 127.0.0.1 with the default RLM pair (or targets ``--url``), sends ``--rounds``
requests per concurrent client at each level, and writes ``bench/results/server.json``: per level the requests,
wall time, throughput (requests/s), p50/p95 latency, HTTP errors (the target is zero) and answers found correct.

Each request is a small RLM task: a ~5 KB context with one planted fact and a question about it.

    .venv/bin/python -m bench.server_load                 # the reported run (a quiet machine, ~15-30 min on 2 cores)
    .venv/bin/python -m bench.server_load --smoke         # a 1-minute check of the script (plain smollm2, 1 and 2)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe as machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

RLM_CONFIG = """
[server]
max_running = 8
max_queue = 64

[models.rlm]
kind = "rlm"
root = "qwen2.5-coder-1.5b"
worker = "qwen2.5-coder-0.5b"
root_options = {{ n_ctx = 16384, max_sessions = 8, n_parallel = 2, n_threads = {threads} }}
worker_options = {{ n_ctx = 8192, n_parallel = 8, n_threads = {threads} }}
limits = {{ max_root_turns = 6, max_wall_s = 900 }}
"""

SMOKE_CONFIG = """
[server]
max_running = 4
max_queue = 16

[models.smollm]
kind = "plain"
model = "smollm2-135m"
options = {{ n_ctx = 1024, n_parallel = 2, n_threads = {threads} }}
"""

NAMES = [
    "Ezra Bell",
    "Mara Quill",
    "Otto Fenn",
    "Lena Voss",
    "Ivo Crane",
    "Nell Ashby",
    "Piet Moor",
    "Cora Lind",
    "Abel Roth",
    "Gwen Hale",
    "Tam Ortiz",
    "Rosa Finch",
]
THINGS = ["boat", "loom", "cart", "kiln", "anvil", "door", "wagon", "gate", "fence", "barn", "shed", "sign"]
COLOURS = ["red", "blue", "green", "black", "silver", "yellow", "brown", "white", "orange", "purple", "grey", "pink"]
FILLER = "\n".join(
    f"On day {i} the market of the town was busy and the river ran slowly past the mill." for i in range(30)
)


def task(i: int, model: str, smoke: bool) -> tuple[dict[str, Any], str]:
    k = i % len(NAMES)
    name, thing, colour = NAMES[k], THINGS[k], COLOURS[k]
    if smoke:
        return {
            "model": model,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": f"Say the colour {colour}."}],
        }, colour
    doc = f"{FILLER}\nThe carpenter {name} painted the {thing} {colour}.\n{FILLER}"
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": doc},
            {"role": "user", "content": f"What colour is the {thing} of the carpenter {name}?"},
        ],
    }, colour


def percentile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    idx = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[idx]


def run_level(url: str, model: str, concurrency: int, rounds: int, smoke: bool, offset: int) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    correct = 0
    lock = threading.Lock()

    def client(c: int) -> None:
        nonlocal correct
        with httpx.Client(timeout=1800) as http:
            for r in range(rounds):
                body, want = task(offset + c * rounds + r, model, smoke)
                t0 = time.monotonic()
                try:
                    resp = http.post(url + "/v1/chat/completions", json=body)
                    dt = time.monotonic() - t0
                    ok = resp.status_code == 200
                    text = resp.json()["choices"][0]["message"]["content"] if ok else ""
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    dt, ok, text = time.monotonic() - t0, False, ""
                    resp = None
                    err = f"{type(e).__name__}: {e}"
                with lock:
                    lat.append(dt)
                    if not ok:
                        errors.append(err if resp is None else f"HTTP {resp.status_code}: {resp.text[:200]}")
                    elif want in (text or "").lower():
                        correct += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    n = concurrency * rounds
    return {
        "concurrency": concurrency,
        "requests": n,
        "wall_s": round(wall, 2),
        "throughput_rps": round(n / wall, 4) if wall else 0.0,
        "p50_s": round(statistics.median(lat), 2) if lat else 0.0,
        "p95_s": round(percentile(lat, 0.95), 2),
        "errors": len(errors),
        "error_samples": errors[:3],
        "correct": None if smoke else correct,  # the smoke prompt only checks the plumbing
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config_text: str, log: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    cfg = Path(tempfile.mkdtemp(prefix="outcore-load-")) / "outcore.toml"
    cfg.write_text(config_text)
    port = free_port()
    outcore = REPO / ".venv" / "bin" / "outcore"
    cmd = [str(outcore if outcore.exists() else "outcore"), "serve", "--port", str(port), "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        if proc.poll() is not None:
            raise SystemExit(f"outcore serve exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, cfg
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"outcore serve not ready after 600 s; see {log}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny check: plain smollm2-135m, levels 1,2, one round")
    ap.add_argument("--levels", default=None, help="comma list of concurrency levels (default 1,4,8)")
    ap.add_argument("--rounds", type=int, default=None, help="requests per client at each level (default 2)")
    ap.add_argument("--url", default=None, help="an already running server (default: start outcore serve here)")
    ap.add_argument("--model", default=None, help="served model to call (default rlm; smollm with --smoke)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads per model")
    ap.add_argument(
        "--out", type=Path, default=None, help="result JSON (default bench/results/server.json; smoke: a temp file)"
    )
    a = ap.parse_args(argv)
    levels = [int(x) for x in (a.levels or ("1,2" if a.smoke else "1,4,8")).split(",")]
    rounds = a.rounds or (1 if a.smoke else 2)
    model = a.model or ("smollm" if a.smoke else "rlm")
    out = a.out or (Path(tempfile.gettempdir()) / "outcore-server-smoke.json" if a.smoke else RESULTS / "server.json")
    proc = None
    t_load = 0.0
    log = Path(tempfile.gettempdir()) / "outcore-server-load.log"
    if a.url:
        url = a.url.rstrip("/")
        config: str | None = None
    else:
        config = (SMOKE_CONFIG if a.smoke else RLM_CONFIG).format(threads=a.threads)
        t0 = time.monotonic()
        proc, url, _ = start_server(config, log)
        t_load = time.monotonic() - t0
        print(f"server ready in {t_load:.1f} s at {url} (log: {log})", file=sys.stderr)
    info = machine()
    results = []
    try:
        offset = 0
        for c in levels:
            print(f"concurrency {c}: {c * rounds} requests ...", file=sys.stderr, flush=True)
            res = run_level(url, model, c, rounds, a.smoke, offset)
            offset += c * rounds
            print(f"  {json.dumps(res)}", file=sys.stderr, flush=True)
            results.append(res)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    doc = {
        "benchmark": "server_load",
        "what": "concurrent chat completions against outcore serve over HTTP on 127.0.0.1",
        "model": model,
        "task": "plain colour prompt (smoke)" if a.smoke else "~5 KB context, one planted fact, one question",
        "rounds_per_client": rounds,
        "server_config": config,
        "server_load_s": round(t_load, 1),
        "machine": info,
        "levels": results,
        "errors_total": sum(r["errors"] for r in results),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    for r in results:  # the README table's rows
        correct = "-" if r["correct"] is None else f"{r['correct']}/{r['requests']}"
        print(
            f"| {r['concurrency']} | {r['requests']} | {r['throughput_rps']:.3f} | {r['p50_s']:.1f} | "
            f"{r['p95_s']:.1f} | {r['errors']} | {correct} |"
        )
    return 0 if doc["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
