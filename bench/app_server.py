"""Run the Gradio demo (`app.py`) as a subprocess on a free local port, offline, and stop it
(used by the demo's tests and `bench/load_app.py`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(temp: Path) -> dict[str, str]:
    """Offline, telemetry-free environment with Gradio's files under `temp`."""
    (temp / "gradio").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "GRADIO_TEMP_DIR": str(temp / "gradio"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HOME": str(temp / "hf"),
    }


def start_app(temp: Path, *args: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Run `python app.py --host 127.0.0.1 --port FREE *args` in `temp`; return it and its URL
    once it answers HTTP 200. Its output goes to the file `process.log_path`."""
    port = free_port()
    log = (temp / f"app_{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=temp,
        env=app_env(temp),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}: {read_log(log.name)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    stop_app(process)
    raise RuntimeError(f"app.py did not answer within {timeout} s: {read_log(log.name)}")


def read_log(path: str) -> str:
    return Path(path).read_text()[-3000:]


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
