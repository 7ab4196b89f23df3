"""`python -m training [train|eval] ...`, e.g. `torchrun --nproc-per-node 2 -m training train
RECIPE --data-root DIR --out DIR`. Without `train`/`eval` the arguments go to `train`."""

from __future__ import annotations

import sys

from training.cli import eval_main, train_main


def main(argv: list[str] | None = None) -> int:
    """Dispatch to `train_main` or `eval_main`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "eval":
        return eval_main(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
