"""Load test of the Gradio demo: N concurrent `gradio_client` clients x M `/segment` requests.

    python bench/load_app.py [--model DIR_OR_ID] [--clients 20] [--requests 10]
    python bench/load_app.py --url http://127.0.0.1:7860/ --pid PID   # an app already running

Starts `app.py` itself (offline, temp files in a temp dir) unless `--url` is given, checks
that every request is answered without error and that every mask file it downloads is the
same whole PNG as the warm-up's (the same image gives the same mask), and samples the
server's resident memory (VmRSS from /proc/PID/status) over several rounds to show whether it
stays steady.
Prints a Markdown summary; exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
sys.path.insert(0, str(ROOT))

from zoo.devices import cpu_name  # noqa: E402


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Sampler(threading.Thread):
    """Samples the server's RSS every `interval` seconds with the number of answers so far."""

    def __init__(self, pid: int, done: list[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.done, self.interval = pid, done, interval
        self.samples: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((self.done[0], rss_mib(self.pid)))
            self.stop.wait(self.interval)


def fetch(file_data: dict) -> bytes:
    """The bytes of a file answer (a Gradio FileData dict) downloaded from the server."""
    with urllib.request.urlopen(file_data["url"], timeout=120) as response:
        return response.read()


def check_mask(data: bytes, reference: bytes | None) -> None:
    """A mask file must be a whole PNG, byte-identical to the reference answer."""
    if not data.startswith(PNG_SIGNATURE) or (reference is not None and data != reference):
        digest = hashlib.sha256(data).hexdigest()[:16]
        raise RuntimeError(f"broken mask file: {len(data)} bytes, sha256 {digest}...")


def run_client(
    url: str,
    image: Path,
    model: str,
    requests: int,
    done: list[int],
    lock,
    reference: bytes | None = None,
):
    """One client: `requests` sequential /segment calls, each mask downloaded and checked
    against `reference`; returns (latencies, errors, last mask bytes)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    latencies, errors, data = [], [], b""
    for _ in range(requests):
        start = time.perf_counter()
        try:
            mask, shares, _ = client.predict(
                handle_file(str(image)), model, "onnx", api_name="/segment"
            )
            if not shares["data"]:
                raise RuntimeError("empty class table")
            data = fetch(mask)
            check_mask(data, reference)
            latencies.append(time.perf_counter() - start)
        except Exception as error:  # count every failure, whatever its kind
            errors.append(f"{type(error).__name__}: {error}")
        with lock:
            done[0] += 1
    return latencies, errors, data


def run_round(url: str, pid: int, args: argparse.Namespace, reference: bytes):
    """`args.clients` concurrent clients; returns (wall s, latencies, errors, RSS samples)."""
    done, lock = [0], threading.Lock()
    sampler = Sampler(pid, done)
    sampler.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        futures = [
            pool.submit(
                run_client, url, Path(args.image), args.model, args.requests, done, lock, reference
            )
            for _ in range(args.clients)
        ]
        results = [future.result() for future in futures]
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    latencies = [t for lat, _, _ in results for t in lat]
    errors = [e for _, errs, _ in results for e in errs]
    return wall, latencies, errors, [mib for _, mib in sampler.samples] + [rss_mib(pid)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start app.py here)")
    parser.add_argument("--pid", type=int, help="server process id, with --url")
    parser.add_argument(
        "--model", default="lraspp_mbv3_synthcity_cpg", help="model to serve and request"
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (memory must not grow)")
    parser.add_argument("--image", default=str(ROOT / "zoo/assets/examples/synthcity_1.png"))
    args = parser.parse_args(argv)
    if args.url and not args.pid:
        parser.error("--url needs --pid (to read the server's memory)")

    from bench.app_server import app_env, start_app, stop_app

    temp = Path(tempfile.mkdtemp(prefix="load_app_"))
    os.environ.update({k: v for k, v in app_env(temp).items() if k.startswith(("HF_", "GRADIO"))})
    process = None
    if args.url:
        url, pid = args.url, args.pid
    else:
        process, url = start_app(temp, "--model", args.model)
        pid = process.pid
    load_before = os.getloadavg()[0]
    rounds = []  # per round: (wall s, latencies, errors, RSS samples)
    try:
        _, warm_errors, reference = run_client(  # warm-up; its mask is the reference
            url, Path(args.image), args.model, 2, [0], threading.Lock()
        )
        if warm_errors:
            raise SystemExit(f"load_app: the warm-up request failed: {warm_errors[0]}")
        baseline = rss_mib(pid)
        for _ in range(args.rounds):
            rounds.append(run_round(url, pid, args, reference))
            time.sleep(1.0)
        after = rss_mib(pid)
    finally:
        if process is not None:
            stop_app(process)

    total = args.clients * args.requests
    print(f"## Demo load test ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- command: `python bench/load_app.py {' '.join(argv or sys.argv[1:])}`".rstrip())
    print(f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_name()}, {platform.platform()}")
    print(
        f"- 1-minute load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        "(clients and server share the machine)"
    )
    print(f"- model: `{args.model}`, ONNX backend; image {Path(args.image).name}")
    print(
        f"- {args.rounds} rounds, each {args.clients} clients x {args.requests} requests = {total}"
    )
    print(f"- server RSS after warm-up: {baseline:.0f} MiB; 1 s after the last round: {after:.0f}")
    print(
        "\n| round | answered | errors | wall s | req/s | median s | p95 s | max s | RSS end MiB "
        "| RSS peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors: list[str] = []
    for index, (wall, latencies, errs, samples) in enumerate(rounds, 1):
        errors += errs
        latencies.sort()
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)] if latencies else float("nan")
        median = statistics.median(latencies) if latencies else float("nan")
        print(
            f"| {index} | {len(latencies)}/{total} | {len(errs)} | {wall:.1f} | "
            f"{len(latencies) / wall:.2f} | {median:.2f} | {p95:.2f} | "
            f"{max(latencies, default=float('nan')):.2f} | {samples[-1]:.0f} | {max(samples):.0f} |"
        )
    for error in errors[:5]:
        print(f"  error: {error}")
    answered = sum(len(latencies) for _, latencies, _, _ in rounds)
    return 0 if not errors and answered == total * args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
