"""The CPU allocator setting: freed activation buffers are reused instead of page-faulted in again each step."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from caekit.config import OptimConfig, TrainConfig
from caekit.models import create_model
from caekit.training import engine as engine_module
from caekit.training.cpu import retain_freed_memory
from caekit.training.objectives import Reconstruct


def _faults_while_reallocating(elements: int, times: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.empty(elements).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_retained_memory_serves_a_freed_32_mb_buffer_again_without_page_faults():
    assert retain_freed_memory()
    elements = 8 * 2**20  # 32 MB: glibc would map (and fault in) 8,192 fresh pages for each of these by default
    _faults_while_reallocating(elements, 2)
    # by default every one of the 20 is mapped afresh: 20 x 8,192 faults; retained, the heap only grows now and then
    # (after a long test session, with a fragmented heap, up to 6 of 20 were seen: the bound is half)
    assert _faults_while_reallocating(elements, 20) < 10 * 8192


def test_the_engine_tunes_the_cpu_only_when_asked_and_keeps_the_allocator_optional(monkeypatch):
    from caekit.training import cpu

    calls = []
    monkeypatch.setattr(cpu, "tune", lambda retain_memory: calls.append(retain_memory))
    monkeypatch.delenv("CAEKIT_CPU_TUNING", raising=False)
    model = create_model("cae28", upsample="nearest", input_shape=(1, 16, 16))
    for tuning, retain in ((True, True), (True, False), (None, True), (False, True)):
        engine_module.Engine(
            model,
            Reconstruct(),
            TrainConfig(device="cpu", progress=False, cpu_tuning=tuning, retain_memory=retain),
            OptimConfig(),
        )
    assert calls == [True, False]  # a library import leaves the process alone unless cpu_tuning is set
    monkeypatch.setenv("CAEKIT_CPU_TUNING", "1")  # what the command line sets
    engine_module.Engine(model, Reconstruct(), TrainConfig(device="cpu", progress=False), OptimConfig())
    assert calls == [True, False, True]
