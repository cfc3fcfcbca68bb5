"""Manual check (pytest benchmarks/scale_elastic.py): two torchrun "nodes" on this host (c10d rendezvous on 127.0.0.1): one rank is killed with SIGKILL in the middle
of training, torchrun restarts the group, the ranks go on from the last checkpoint by themselves, and the run ends
with the weights of one uninterrupted process (gloo, float tolerance)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from caekit import api
from caekit.checkpoint import model_state, read_checkpoint
from caekit.runs import RunFolder

# 1,024 training images (a few seconds an epoch), a whole number of global batches of 32, so that the two ranks'
# mean of means is the one process's mean in every step
DATA = {"name": "digits", "image_size": 28, "val_fraction": 0.2, "limit": 1280}
EPOCHS, PER_RANK_BATCH = 3, 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _node(port: int, runs: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for name in ("WORLD_SIZE", "RANK", "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "caekit-elastic-test",
        "--max-restarts", "3", "--monitor_interval", "0.2",
        "-m", "caekit", "train", "--dataset", "digits", "--image-size", "28", "--model", "cae28",
        "--batch-size", str(PER_RANK_BATCH), "--epochs", str(EPOCHS), "--seed", "3", "--device", "cpu", "--no-progress",
        "--runs-dir", str(runs), "--name", "run", "--set", "data.val_fraction=0.2", "--set", "data.limit=1280",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank to kill through /proc")
def test_two_nodes_survive_a_killed_rank_and_match_one_process(tmp_path: Path) -> None:
    single = api.train(
        {
            "name": "run",
            "runs_dir": str(tmp_path / "single"),
            "model": {"name": "cae28"},
            "data": DATA,
            "train": {"epochs": EPOCHS, "batch_size": 2 * PER_RANK_BATCH, "device": "cpu", "progress": False, "seed": 3},
        }
    )
    assert single.run is not None and len(single.splits.train) % (2 * PER_RANK_BATCH) == 0
    runs, port = tmp_path / "nodes", _free_port()
    nodes = [_node(port, runs) for _ in range(2)]
    try:
        metrics = runs / "run" / "metrics.csv"
        deadline = time.monotonic() + 240
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):  # epoch 1 is checkpointed
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "the nodes did not train"
            time.sleep(0.02)
        workers = _children(nodes[1].pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)  # in epoch 2
        outputs = [n.communicate(timeout=300) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    for n, (_, err) in zip(nodes, outputs):
        assert n.returncode == 0, err[-3000:]
    assert sum("exitcode: -9" in err for _, err in outputs) == 1  # torchrun saw the killed rank ...
    assert sum(out.count("resumed ") for out, _ in outputs) == 1  # ... restarted the group, and rank 0 went on
    run = RunFolder(runs / "run")
    assert [int(r["epoch"]) for r in run.read_metrics()] == [1, 2, 3]  # resumed, no epoch twice
    assert sorted(p.name for p in runs.iterdir()) == ["run"]
    got = model_state(read_checkpoint(run.checkpoint("last"))[0])
    want = model_state(read_checkpoint(single.run.checkpoint("last"))[0])
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-3, atol=1e-5, msg=key)
