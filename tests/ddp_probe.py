"""A training run under DDP with the gloo backend on the CPU, one process per rank (started with spawn by
tests/test_detect.py): each rank trains, then saves its final weights for the test to compare."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run_rank(rank: int, world: int, port: int, root: str, out: str, weights: str) -> None:
    import torch

    from deeplesion.detect.config import load_config
    from deeplesion.detect.train import train

    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank)}
    )
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    config = load_config("cpu-small", epochs=1, steps_per_epoch=2, warmup_iters=1, batch_size=4)
    summary = train(root, out, config, force=True, jobs=1)
    assert summary.model is not None
    torch.save(summary.model.state_dict(), Path(weights) / f"rank-{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


if __name__ == "__main__":
    run_rank(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
