#!/usr/bin/env python3
"""Polling and submit benchmark: Conduit against the pollbase baselines, same run.

One command (from the repository root):  python3 bench/polling.py
Builds both servers in release mode, then with wrk (2 threads, 64 keep-alive
connections, 10 s each, loopback only) measures:
  - pollbase GET /mem/{id}, GET /sqlite/{id}, POST /submit  (the baselines)
  - Conduit GET /v1/tasks/{id} over 10,000 tasks, with the key's authentication
    and owner check, and durable async submits (POST /v1/images/generations).
Prints requests/s and p50/p99 for each, and Conduit's ratios to the baselines.
Repeat with --runs N to report medians.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CONDUIT_SHARED", os.path.join(ROOT, "..", "shared"))
POLLBASE = os.path.join(SHARED, "tools", "pollbase")
LUA = os.path.join(ROOT, "bench", "lua")
TASKS = 10_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def wrk(url, script, env=None, duration=10, connections=64):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def build():
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "conduit"], cwd=ROOT, check=True)
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--manifest-path", os.path.join(POLLBASE, "Cargo.toml"),
         "--target-dir", os.path.join(ROOT, "target", "pollbase")],
        check=True,
    )


def request(method, url, key, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def baseline(results):
    port = free_port()
    exe = os.path.join(ROOT, "target", "pollbase", "release", "pollbase")
    work = tempfile.mkdtemp()
    proc = subprocess.Popen([exe, "--listen", f"127.0.0.1:{port}", "--tasks", str(TASKS)], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/hello")
        base = f"http://127.0.0.1:{port}"
        rt = os.path.join(POLLBASE, "random-task.lua")
        results.setdefault("pollbase /mem", []).append(wrk(f"{base}/mem/", rt))
        results.setdefault("pollbase /sqlite", []).append(wrk(f"{base}/sqlite/", rt))
        results.setdefault("pollbase /submit", []).append(wrk(f"{base}/submit", os.path.join(POLLBASE, "post.lua")))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def conduit(results):
    port = free_port()
    data = tempfile.mkdtemp()
    env = {
        **os.environ,
        "CONDUIT_DATA_DIR": data,
        "CONDUIT_LISTEN": f"127.0.0.1:{port}",
        "CONDUIT_MASTER_KEY": "condt_master_bench",
        "CONDUIT_LOG": "warn",
        # Tasks stay pending: the benchmark measures the API, not the renderer.
        "CONDUIT_MAX_CONCURRENT_TASKS": "1",
        "CONDUIT_LOCAL_WORK_MS": "600000",
    }
    exe = os.path.join(ROOT, "target", "release", "conduit")
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([exe, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        key = request("POST", f"{base}/admin/v1/keys", "condt_master_bench", {"name": "bench"})["key"]
        kenv = {"CONDUIT_KEY": key}

        # 10,000 tasks to poll, created through the API.
        wrk(f"{base}/v1/images/generations", os.path.join(LUA, "submit.lua"), kenv, duration=3)
        ids, after = [], None
        while len(ids) < TASKS:
            page = request("GET", f"{base}/v1/tasks?limit=100" + (f"&after={after}" if after else ""), key)
            ids += [t["task_id"] for t in page["data"]]
            if not page["has_more"]:
                break
            after = page["next_cursor"]
        while len(ids) < TASKS:
            ids.append(request("POST", f"{base}/v1/images/generations", key,
                               {"prompt": "x", "model": "dall-e-2", "size": "256x256", "async": True})["task_id"])
        ids = ids[:TASKS]
        ids_file = os.path.join(data, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(ids) + "\n")
        kenv["IDS_FILE"] = ids_file

        results.setdefault("conduit GET /v1/tasks/{id}", []).append(wrk(f"{base}/", os.path.join(LUA, "poll.lua"), kenv))
        results.setdefault("conduit POST async submit", []).append(
            wrk(f"{base}/v1/images/generations", os.path.join(LUA, "submit.lua"), kenv))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    if not args.no_build:
        build()
    results = {}
    for _ in range(args.runs):
        baseline(results)
        conduit(results)

    med = {name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
           for name, runs in results.items()}
    print(f"\nmedians of {args.runs} run(s), wrk -t2 -c64 -d10s, loopback, {TASKS} tasks")
    print(f"{'':32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in med.items():
        print(f"{name:32} {m['rps']:>10.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f}")
    for name, runs in results.items():
        bad = sum(r["non_2xx"] for r in runs)
        if bad:
            print(f"warning: {name}: {bad} non-2xx answers")
    poll, sub = med["conduit GET /v1/tasks/{id}"], med["conduit POST async submit"]
    print(f"\npoll / pollbase /mem:       {poll['rps'] / med['pollbase /mem']['rps']:.2f}x")
    print(f"poll / pollbase /sqlite:    {poll['rps'] / med['pollbase /sqlite']['rps']:.2f}x")
    print(f"submit / pollbase /submit:  {sub['rps'] / med['pollbase /submit']['rps']:.2f}x")
    print(json.dumps({"medians": med, "runs": results}))


if __name__ == "__main__":
    sys.exit(main())
