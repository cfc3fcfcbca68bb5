"""Elastic jobs (torchrun --max-restarts): a start or restart of the group goes on from the named run's last
checkpoint by itself, since torchrun re-runs the same command line; two torchrun "nodes" on this host survive a rank
killed with SIGKILL and end with the weights of the same two nodes left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.distributed import TCPStore

from caekit import api
from caekit.checkpoint import model_state, read_checkpoint
from caekit.errors import ConfigError
from caekit.runs import RunFolder


def _config(runs: Path, epochs: int, name: str | None = "run") -> dict:
    return {
        "name": name,
        "runs_dir": str(runs),
        "model": {"name": "cae28", "args": {"upsample": "nearest"}},
        "data": {"name": "digits", "image_size": 16, "limit": 100},
        "train": {"epochs": epochs, "batch_size": 32, "device": "cpu", "progress": False, "verbose": True},
    }


def test_an_elastic_restart_resumes_the_named_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.train(_config(tmp_path, 1))  # the first start: a fresh run
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")  # what torchrun puts in the environment of an elastic job
    capsys.readouterr()
    again = api.train(_config(tmp_path, 2))  # the same command line after a restart
    assert again.run is not None and again.run.path == tmp_path / "run"  # not run-2
    assert [int(r["epoch"]) for r in again.run.read_metrics()] == [1, 2]  # went on after epoch 1
    assert f"resumed {tmp_path / 'run'} after epoch 1" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs a fixed run name"):
        api.train(_config(tmp_path, 1, name=None))


def test_without_torchrun_a_taken_name_is_a_new_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHELASTIC_MAX_RESTARTS", raising=False)
    api.train(_config(tmp_path, 1))
    second = api.train(_config(tmp_path, 1))
    assert second.run is not None and second.run.path.name == "run-2"  # nothing of the first run is touched


# 1,024 training images of 28x28 in global batches of 32 (32 steps an epoch): long enough epochs that the kill lands
# in the middle of training, short enough that both jobs take well under a minute each
EPOCHS = 4
TRAIN = [
    *("--dataset", "digits", "--image-size", "28", "--model", "cae28", "--batch-size", "16"),
    *("--epochs", str(EPOCHS), "--seed", "3", "--device", "cpu", "--no-progress", "--name", "run"),
    *("--set", "data.val_fraction=0.2", "--set", "data.limit=1280"),
]


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


def _two_nodes(runs: Path, port: int) -> list[subprocess.Popen[str]]:
    """Two torchrun launches of one worker each, meeting through a c10d rendezvous on 127.0.0.1:port; each node's
    output goes to ``runs/node-N.log``.

    The store is the test's (``is_host=false``), not the first agent's: an agent that hosts it takes it away when it
    exits, and the other agent, still leaving the rendezvous, can fail on the lost connection."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "LOGLEVEL": "INFO"}  # the agents' steps
    # a fresh store for each round of the rendezvous: the agents' shared one keeps the last round's addresses, which a
    # restarted rank can read before its peer has replaced them (pytorch/pytorch#135712, #167288)
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"caekit-{runs.parent.name}-{runs.name}",
        "--rdzv_conf", "is_host=false,join_timeout=240,last_call_timeout=5", "--max-restarts", "3", "--monitor_interval", "0.2",
        "-m", "caekit", "train", *TRAIN, "--runs-dir", str(runs),
    ]  # fmt: skip
    runs.mkdir()
    nodes = []
    for i in range(2):
        with open(runs / f"node-{i}.log", "w") as log:  # the child keeps its own copy of the file
            nodes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    return nodes


def _finish(nodes: list[subprocess.Popen[str]], runs: Path) -> list[str]:
    """Each node's output, once both have ended well."""
    try:
        for n in nodes:
            n.wait(timeout=300)
    finally:
        for n in nodes:
            n.kill()
    logs = [(runs / f"node-{i}.log").read_text() for i in range(len(nodes))]
    for n, log in zip(nodes, logs):
        assert n.returncode == 0, log[-3000:]
    return logs


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank to kill through /proc")
def test_two_nodes_survive_a_killed_rank_and_end_as_if_left_alone(tmp_path: Path) -> None:
    """The tolerance is exact equality: two ranks sum in the same order however they were started, and resuming
    from a checkpoint restores the weights, the optimiser, the shuffling and the random streams bit for bit."""
    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # what both rendezvous meet in
    alone = _finish(_two_nodes(tmp_path / "alone", store.port), tmp_path / "alone")
    assert not any("exitcode" in log for log in alone)
    nodes = _two_nodes(tmp_path / "killed", store.port)
    metrics = tmp_path / "killed" / "run" / "metrics.csv"
    try:
        deadline = time.monotonic() + 240
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):  # epoch 1 is checkpointed
            assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "the nodes did not train"
            time.sleep(0.01)
        workers = _children(nodes[1].pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)  # early in epoch 2
    except BaseException:
        for n in nodes:
            n.kill()
        raise
    killed = _finish(nodes, tmp_path / "killed")
    assert sum("exitcode: -9" in log for log in killed) == 1  # torchrun saw the killed rank ...
    assert sum(log.count("resumed ") for log in killed) == 1  # ... restarted the group, and rank 0 went on
    run = RunFolder(tmp_path / "killed" / "run")
    assert [int(r["epoch"]) for r in run.read_metrics()] == list(range(1, EPOCHS + 1))  # resumed, no epoch twice
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["node-0.log", "node-1.log", "run"]
    got = model_state(read_checkpoint(run.checkpoint("last"))[0])
    want = model_state(read_checkpoint(RunFolder(tmp_path / "alone" / "run").checkpoint("last"))[0])
    assert got.keys() == want.keys()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
