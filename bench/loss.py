"""Benchmark of the CPG loss: sparse implementation vs the direct (dense) form vs cross-entropy.

    python bench/loss.py [--repeats 7] [--output runs/bench/loss.md]
    python bench/loss.py --count-ops [--sizes 96x128 192x256] [--classes 19 150]

``--count-ops`` counts, with torch.profiler on the CPU, the aten ops and host syncs of one
forward + backward of the sparse and the dense path (``CPGLoss(path=...)``) at each size and
class count: the dense path's counts stay the same, the sparse path's grow.


Settings: ``torch.set_num_threads(2)`` (``--threads``), CPU, B=2, 512x512, float32 logits
(3 * randn), blocky labels (``bench/synthetic.py``: per image 16 Voronoi cells, 8 rectangles,
4 thin 1-3 px segments, one 40x60 ignored box; about 4% of pixels have a 4-neighbour of another
label).
For each C in {19, 150, 171} and k in {3, 5, 7} it reports the median forward+backward time,
the extra peak memory and the relative value/gradient error of ours against the direct form.

Extra peak memory: each case runs in a fresh subprocess with ``MALLOC_MMAP_THRESHOLD_=65536``
(so every large tensor is its own mmap and freed memory goes back to the OS).  After a small
warm-up, the peak-RSS counter is reset (``/proc/self/clear_refs``), one forward+backward runs,
and ``VmHWM - VmRSS(before) - size(logits.grad)`` is reported: memory above the inputs and the
logits gradient, which every loss produces.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.synthetic import blocky_labels
from training.losses import CPGLoss, cpg_kernels

B, H, W = 2, 512, 512
IGNORE = 255
CLASSES = (19, 150, 171)
KERNELS = (3, 5, 7)


def direct_cpg(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Direct form: softmax, one-hot, depthwise conv over all classes, dense masks (exact)."""
    b, c, h, w = logits.shape
    r = k // 2
    kern = cpg_kernels(k, torch.float64)
    scale = {3: 2, 5: 20, 7: 780}[k]
    prob = torch.softmax(logits.float(), 1)
    lab = target.long()
    ign = lab == IGNORE
    onehot = F.one_hot(lab.masked_fill(ign, c), c + 1)[..., :c].permute(0, 3, 1, 2).float()

    def conv(t: torch.Tensor, kk: torch.Tensor) -> torch.Tensor:
        wgt = kk.float()[:, None].repeat(c, 1, 1, 1)
        t = F.pad(t, (r, r, r, r), mode="replicate")
        return F.conv2d(t, wgt, groups=c).view(b, c, 2, h, w)

    g_int = conv(onehot, (kern * scale).round())  # integer sums: exact in float32
    bnd = g_int != 0
    pad_ign = F.pad(ign[:, None].float(), (r, r, r, r), mode="replicate")
    bnd &= ~(F.max_pool2d(pad_ign, k, 1)[:, 0, None, None] > 0)
    diff = g_int / scale - conv(prob, kern)
    return diff[bnd].square().mean()


def ce_loss(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    return F.cross_entropy(logits, target.long(), ignore_index=IGNORE)


def ours(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Our loss on its default path ("auto": sparse on the CPU, dense on CUDA if it fits)."""
    return CPGLoss(k, IGNORE)(logits, target)


def ours_sparse(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    return CPGLoss(k, IGNORE, path="sparse")(logits, target)


def ours_dense(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    return CPGLoss(k, IGNORE, path="dense")(logits, target)


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "ce": ce_loss,
    "direct": direct_cpg,
    "ours": ours,
    "sparse": ours_sparse,
    "dense": ours_dense,
}


def inputs(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    logits = torch.randn(B, num_classes, H, W).mul_(3).requires_grad_()
    return logits, blocky_labels(num_classes, (B, H, W)).long()


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
clock = time.perf_counter


def fwd_bwd(fn: Callable, logits: torch.Tensor, target: torch.Tensor, k: int) -> float:
    logits.grad = None
    t0 = clock()
    fn(logits, target, k).backward()
    return clock() - t0


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def memory_case(method: str, num_classes: int, k: int) -> None:
    """Run in a subprocess: print extra peak bytes of one forward+backward."""
    fn = METHODS[method]
    small = torch.randn(B, num_classes, 32, 32, requires_grad=True)
    fwd_bwd(fn, small, blocky_labels(num_classes, (B, H, W))[:, :32, :32].long(), k)  # warm-up
    logits, target = inputs(num_classes)
    del small
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
    before = _status_kib("VmRSS")
    fwd_bwd(fn, logits, target, k)
    peak = _status_kib("VmHWM")
    # The gradient may be calloc-backed with untouched (unmapped) pages: count only what is
    # resident of it (touching every page afterwards shows how much was not).
    rss = _status_kib("VmRSS")
    logits.grad.view(-1)[:: 4096 // logits.grad.element_size()].add_(0)
    untouched = (_status_kib("VmRSS") - rss) * 1024
    grad_bytes = logits.grad.numel() * logits.grad.element_size()
    print((peak - before) * 1024 - (grad_bytes - untouched))


def extra_memory(method: str, num_classes: int, k: int, threads: int) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--memory-case", method, str(num_classes), str(k)]
    cmd += ["--threads", str(threads)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1])


def boundary_fraction(target: torch.Tensor, num_classes: int, k: int) -> float:
    """Fraction of pixels holding at least one boundary entry."""
    e = CPGLoss(k, IGNORE).boundary_entries(target, num_classes)
    pix = (e[:, 0] * H + e[:, 3]) * W + e[:, 4]
    return pix.unique().numel() / target.numel()


def rel_errors(logits: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    vals, grads = [], []
    for fn in (direct_cpg, ours):
        logits.grad = None
        v = fn(logits, target, k)
        v.backward()
        vals.append(float(v.detach()))
        grads.append(logits.grad.clone())
    gerr = float((grads[1] - grads[0]).abs().max() / grads[0].abs().max())
    return abs(vals[1] - vals[0]) / abs(vals[0]), gerr


def median_time(fn: Callable, logits: torch.Tensor, target: torch.Tensor, k: int, n: int) -> float:
    fwd_bwd(fn, logits, target, k)  # warm-up
    return statistics.median(fwd_bwd(fn, logits, target, k) for _ in range(n))


def profile_ours(c: int, k: int, runs: int) -> None:
    """Print where our loss spends its time (self CPU time per op) over `runs` fwd+bwd."""
    from torch.profiler import ProfilerActivity, profile

    logits, target = inputs(c)
    fwd_bwd(ours, logits, target, k)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fwd_bwd(ours, logits, target, k)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


SYNC_OPS = ("aten::nonzero", "aten::_local_scalar_dense", "aten::_unique2", "aten::unique_dim")


@contextmanager
def _counting_tolist():
    """Count ``Tensor.tolist`` calls: a host read the CPU profiler does not show as an op."""
    calls = [0]
    original = torch.Tensor.tolist

    def counted(self: torch.Tensor):
        calls[0] += 1
        return original(self)

    torch.Tensor.tolist = counted
    try:
        yield calls
    finally:
        torch.Tensor.tolist = original


def op_counts(path: str, c: int, size: tuple[int, int, int], k: int) -> dict[str, int]:
    """Ops of one forward + backward of our loss on ``path``, counted by torch.profiler (CPU).

    dispatched: aten ops not nested in another aten op (each one is at least one kernel launch
    on a GPU); all: every aten event; syncs: host reads (nonzero, scalar reads, unique, tolist),
    each a stream sync on a GPU."""
    from torch.profiler import ProfilerActivity, profile

    target = blocky_labels(c, size).long()
    torch.manual_seed(1)
    logits = torch.randn(size[0], c, *size[1:]).mul_(3).requires_grad_()
    loss = CPGLoss(k, IGNORE, path=path)
    loss(logits, target).backward()  # warm-up (cached kernels)
    logits.grad = None
    with _counting_tolist() as tolist, profile(activities=[ProfilerActivity.CPU]) as prof:
        loss(logits, target).backward()
    events = prof.events()

    def nested(event) -> bool:
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        return parent is not None

    aten = [e for e in events if e.name.startswith("aten::")]
    counts = {
        "dispatched": sum(not nested(e) for e in aten),
        "all": len(aten),
        "nonzero": sum(e.name == "aten::nonzero" for e in aten),
        "scalar reads": sum(e.name == "aten::_local_scalar_dense" for e in aten),
        "tolist": tolist[0],
    }
    counts["syncs"] = sum(e.name in SYNC_OPS for e in aten) + tolist[0]
    return counts


def count_ops(classes: list[int], sizes: list[tuple[int, int]], k: int, batch: int) -> None:
    """Print a table of op and sync counts per forward + backward, both paths."""
    cols = ["dispatched", "all", "nonzero", "scalar reads", "tolist", "syncs"]
    print(f"CPG loss, one forward + backward on the CPU, B={batch}, k={k}, torch.profiler")
    print(
        "| path | C | H x W | aten ops (dispatched) | aten events (all) | nonzero | "
        "scalar reads | tolist | syncs |"
    )
    print("|---" * 9 + "|")
    for path in ("sparse", "dense"):
        for c in classes:
            for h, w in sizes:
                n = op_counts(path, c, (batch, h, w), k)
                print(
                    f"| {path} | {c} | {h} x {w} | " + " | ".join(str(n[x]) for x in cols) + " |",
                    flush=True,
                )


def image_size(text: str) -> tuple[int, int]:
    """argparse type: "HxW" with H, W >= 65 (the label maker's smallest)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(v.isdigit() and int(v) >= 65 for v in parts):
        raise argparse.ArgumentTypeError(f"size must be HxW with H, W >= 65, got {text!r}")
    return int(parts[0]), int(parts[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    ap.add_argument("--direct-repeats", type=int, default=3, help="timed runs of the direct form")
    ap.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    ap.add_argument("--kernels", type=int, nargs="+", default=list(KERNELS))
    ap.add_argument("--no-direct", action="store_true", help="skip the (slow) direct form")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: perf_counter; process: CPU time of the process (use with --threads 1 on a "
        "busy machine)",
    )
    ap.add_argument("--output", type=Path, default=Path("runs/bench/loss.md"))
    ap.add_argument("--memory-case", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument(
        "--profile", action="store_true", help="torch.profiler table of ours (first C and k)"
    )
    ap.add_argument(
        "--count-ops",
        action="store_true",
        help="count aten ops and host syncs per forward+backward of the sparse and dense paths "
        "(first k; --sizes, --classes 19 150 by default)",
    )
    ap.add_argument(
        "--sizes",
        nargs="+",
        type=image_size,
        default=[(96, 128), (192, 256)],
        help="HxW for --count-ops",
    )
    ap.add_argument("--batch", type=int, default=2, help="batch size for --count-ops")
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    if args.memory_case:
        memory_case(args.memory_case[0], int(args.memory_case[1]), int(args.memory_case[2]))
        return
    if args.profile:
        profile_ours(args.classes[0], args.kernels[0], args.repeats)
        return
    if args.count_ops:
        classes = args.classes if args.classes != list(CLASSES) else [19, 150]
        count_ops(classes, args.sizes, args.kernels[0], args.batch)
        return
    mib = 2.0**20
    rows = [
        "| C | k | boundary px | CE time (s) | direct time (s) | ours time (s) | ours / CE | "
        "CE extra mem (MiB) | direct extra mem (MiB) | ours extra mem (MiB) | "
        "ours mem / logits | value rel err | grad rel err |",
        "|---" * 13 + "|",
    ]
    print(rows[0], flush=True)
    for c in args.classes:
        logits, target = inputs(c)
        logits_mib = logits.numel() * 4 / mib
        t_ce = median_time(ce_loss, logits, target, 3, args.repeats)
        m_ce = extra_memory("ce", c, 3, args.threads) / mib
        for k in args.kernels:
            t_ours = median_time(ours, logits, target, k, args.repeats)
            m_ours = extra_memory("ours", c, k, args.threads) / mib
            if args.no_direct:
                t_dir, m_dir, verr, gerr = (float("nan"),) * 4
            else:
                t_dir = median_time(direct_cpg, logits, target, k, args.direct_repeats)
                m_dir = extra_memory("direct", c, k, args.threads) / mib
                verr, gerr = rel_errors(logits, target, k)
            row = (
                f"| {c} | {k} | {100 * boundary_fraction(target, c, k):.1f}% | "
                f"{t_ce:.3f} | {t_dir:.3f} | {t_ours:.3f} | {t_ours / t_ce:.2f} | "
                f"{m_ce:.1f} | {m_dir:.1f} | {m_ours:.1f} | {m_ours / logits_mib:.3f} | "
                f"{verr:.1e} | {gerr:.1e} |"
            )
            rows.append(row)
            print(row, flush=True)
        del logits
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(
        f"B={B}, {H}x{W}, {torch.get_num_threads()} threads, clock {args.clock}, median of "
        f"{args.repeats} (direct: {args.direct_repeats}); logits: {B}*C*{H}*{W}*4 bytes\n\n"
        + "\n".join(rows)
        + "\n"
    )
    tmp.replace(args.output)
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
