"""Join a data-parallel job from another node: ``torchrun ... -m ddr_pipeline.distributed``.

The head node runs ``kedro run`` (rank 0 and its local ranks); every other node runs, with the
same ``--nproc-per-node`` and ``--nnodes``::

    torchrun --nnodes 2 --node-rank 1 --nproc-per-node 4 \\
        --master-addr <head> --master-port 29500 -m ddr_pipeline.distributed

The job (configuration and data) comes from rank 0, so this node needs only the installed
package. ``--backend`` must match the head's (``auto``: NCCL when CUDA is available).
"""

from __future__ import annotations

import argparse
import logging

import torch

from ddr_pipeline.distributed.launch import run_rank


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run this process's rank of the head node's job."""
    parser = argparse.ArgumentParser(prog="python -m ddr_pipeline.distributed", description=__doc__)
    parser.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    parser.add_argument("--timeout-s", type=int, default=600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    cuda = args.backend == "nccl" or (args.backend == "auto" and torch.cuda.is_available())
    run_rank(None, args.backend, "cuda" if cuda else "cpu", args.timeout_s)


if __name__ == "__main__":
    main()
