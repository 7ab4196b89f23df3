"""Time each step of README.md's Quick start, as written, in an empty folder (CPU).

    python bench/quickstart.py [--workdir DIR]

Runs the commands of the Quick start's bash block (not `source`, not the demo server) with the
`zoo` of this interpreter, one after the other, and prints a markdown table of seconds per
step with the machine and the 1-minute load average before and after. The README's step times
come from this script; its record is in docs/benchmarks.md ("Quick start").
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoo.devices import cpu_name

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_commands() -> list[str]:
    """The commands of the first bash block of README's "Quick start" section."""
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    if match is None:
        raise ValueError("README's Quick start has no bash block")
    block = match.group(1).replace("\\\n", " ")
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="run here (default: a new temp folder)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cpg-zoo-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    zoo = Path(sys.executable).parent / "zoo"
    load_before = os.getloadavg()[0]
    rows = []
    for command in quickstart_commands():
        argv_ = shlex.split(command)
        if argv_[0] != "zoo" or argv_[1] == "demo":
            continue
        start = time.perf_counter()
        done = subprocess.run([str(zoo), *argv_[1:]], cwd=work, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"failed: {command}\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append((" ".join(command.split()), seconds))
    load_after = os.getloadavg()[0]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{os.cpu_count()} CPUs ({cpu_name()}), {now}, load (1 min) {load_before:.1f} "
          f"before, {load_after:.1f} after; folder {work}\n")  # fmt: skip
    print("| step | seconds |\n|---|---|")
    for command, seconds in rows:
        print(f"| `{command}` | {seconds:.1f} |")
    print(f"| all | {sum(s for _, s in rows):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
