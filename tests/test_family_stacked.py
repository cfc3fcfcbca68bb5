"""Stacked autoencoders: the 8-3-8 encoder, greedy stages freezing what they should, stacking through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caekit.errors import CaekitError
from caekit.inference import encode, load
from caekit.models import create_model
from caekit.training.stage import GreedyStage
from caekit.workflows.encoder838 import encoder_838
from caekit.workflows.stacked import train_stacked

STAGES = [{"type": "conv", "filters": 4, "stride": 2, "batch_norm": True}, {"type": "fc", "units": 12}]


def test_encoder_838_learns_distinct_codes():
    result = encoder_838(epochs=6, steps_per_epoch=300)
    assert result.history[-1]["train_loss"] < 0.1 < result.history[0]["train_loss"]
    assert torch.equal(result.outputs.argmax(1), torch.arange(8))  # every pattern comes back as itself
    assert len({tuple(c.round(decimals=1).tolist()) for c in result.codes}) == 8
    lines = result.table().splitlines()
    assert len(lines) == 10 and lines[2].startswith("1 0 0 0 0 0 0 0")


def test_stage_model_freezes_every_other_stage_and_keeps_them_in_eval_mode():
    model = create_model("stacked", input_shape=(1, 8, 8), stages=STAGES, train_stage=1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("encoder.stages.1.", "decoders.1.")) for n in trainable)
    model.train()
    assert not model.encoder.stages[0].training and model.encoder.stages[1].training


def test_greedy_stage_step_changes_only_the_stage_being_trained():
    torch.manual_seed(0)
    model = create_model("stacked", input_shape=(1, 8, 8), stages=STAGES, train_stage=1)
    model.train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    objective = GreedyStage()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    loss, _ = objective.loss(model, {"image": torch.rand(8, 1, 8, 8)})
    loss.backward()
    optimizer.step()
    assert all(torch.equal(p, dict(model.named_parameters())[n]) for n, p in frozen.items())
    assert all(torch.equal(b, dict(model.named_buffers())[n]) for n, b in buffers.items())  # frozen BN statistics too
    assert all(not torch.equal(p, dict(model.named_parameters())[n]) for n, p in trained.items())


def test_bad_stacks_are_user_errors():
    with pytest.raises(CaekitError):
        create_model("stacked", input_shape=(1, 8, 8), stages=[{"type": "fc", "units": 4}, {"type": "conv", "filters": 2}])
    with pytest.raises(CaekitError):
        create_model("stacked", input_shape=(1, 8, 8), stages=STAGES, train_stage=2)


@pytest.mark.slow
def test_greedy_stacking_through_the_engine_keeps_each_stage_and_gives_an_encoder(tmp_path):
    config = {
        "runs_dir": str(tmp_path),
        "name": "st",
        "data": {"name": "digits", "limit": 300},
        "optim": {"lr": 0.003, "weight_decay": 0.0},
        "train": {"epochs": 3, "batch_size": 32, "progress": False},
    }
    result = train_stacked(config, STAGES, finetune_epochs=2)
    assert [p.name for p in result.stage_runs] == ["st-stage1", "st-stage2"] and result.finetune_run.name == "st-finetune"
    for run in result.stage_runs:
        assert (run / "reconstructions.png").is_file() and (run / "checkpoints" / "best.safetensors").is_file()
    # stage 2 started from stage 1's weights and did not change them
    first, _ = load(result.stage_runs[0])
    second, _ = load(result.stage_runs[1])
    for (name, a), b in zip(first.encoder.stages[0].state_dict().items(), second.encoder.stages[0].state_dict().values()):
        assert torch.equal(a, b), name
    stage_history = [np.loadtxt(run / "metrics.csv", delimiter=",", skiprows=1, ndmin=2) for run in result.stage_runs]
    assert all(h[-1, 1] < h[0, 1] for h in stage_history)  # train loss falls in every stage
    model, _ = load(result.finetune_run)
    assert model.encoder(torch.rand(2, 1, 8, 8)).code.shape == (2, 12)
    codes = encode(model, torch.rand(5, 1, 8, 8))
    assert codes.shape == (5, 12)


def test_a_stack_of_fully_connected_stages_trains_and_draws_its_pictures(tmp_path, capsys):
    """configs/family-stacked.yaml's kind of stack: no conv stage, so no feature maps (drawing them crashed)."""
    from conftest import run_cli

    config = tmp_path / "stack.yaml"
    config.write_text(
        "model: {name: stacked, args: {stages: [{type: fc, units: 32, activation: sigmoid}, {type: fc, units: 8}]}}\n"
        "data: {name: digits, limit: 200}\noptim: {weight_decay: 0.0}\ntrain: {epochs: 1, batch_size: 32, progress: false}\n"
    )
    overrides = ["--set", f"runs_dir={tmp_path / 'runs'}", "--set", "name=fc"]
    code, _, err = run_cli(["stack", str(config), *overrides], capsys)
    assert code == 0, err
    for run in ("fc-stage1", "fc-stage2", "fc-finetune"):
        assert (tmp_path / "runs" / run / "reconstructions.png").is_file()
        assert not (tmp_path / "runs" / run / "feature_maps.png").exists()


def test_a_denoising_stage_sees_its_input_masked_and_reconstructs_it_clean():
    torch.manual_seed(0)
    stages = [{"type": "fc", "units": 32, "activation": "sigmoid"}, {"type": "fc", "units": 8, "activation": "sigmoid"}]
    model = create_model("stacked", input_shape=(1, 8, 8), stages=stages, train_stage=1).eval()
    seen: list[torch.Tensor] = []
    model.encoder.stages[1].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    images = {"image": torch.rand(16, 1, 8, 8)}
    clean = model.stage_target(images["image"])
    objective = GreedyStage(loss="bce", noise="mask", level=0.5)
    loss, _ = objective.loss(model, images)
    masked = seen[-1] == 0
    assert 0.4 < masked.float().mean().item() < 0.6  # about half of the stage's 32 inputs hidden, the rest untouched
    assert torch.equal(seen[-1][~masked], clean[~masked]) and (clean > 0).all()
    # the target is the clean code, not the masked input the stage saw
    output = model.decoders[1](model.encoder.stages[1](seen[-1]))
    assert loss.item() == pytest.approx(torch.nn.functional.binary_cross_entropy(output, clean).item(), rel=1e-6)
    objective.loss(model, images)
    assert not torch.equal(seen[-1], seen[-3])  # fresh noise every step
    first = objective.evaluate(model, images)["loss"]
    assert torch.equal(first, objective.evaluate(model, images)["loss"])  # validation noise is fixed
    assert GreedyStage(loss="bce").evaluate(model, images)["loss"].mean() < first.mean()  # noise makes it harder


def test_noise_and_a_loss_that_need_the_unit_range_are_refused_on_a_relu_code():
    model = create_model("stacked", input_shape=(1, 8, 8), stages=STAGES, train_stage=1)  # stage 2 takes relu conv codes
    with pytest.raises(CaekitError, match="use noise: mask"):
        GreedyStage(noise="gaussian", level=0.1).loss(model, {"image": torch.rand(4, 1, 8, 8)})
    with pytest.raises(CaekitError, match="use loss: mse"):  # was torch's RuntimeError from inside BCE
        GreedyStage(loss="bce").loss(model, {"image": torch.rand(4, 1, 8, 8)})
    GreedyStage(noise="mask", level=0.1).loss(model, {"image": torch.rand(4, 1, 8, 8)})  # masking needs no range


def test_a_denoising_objective_makes_every_stage_and_the_fine_tuning_denoise(tmp_path):
    import yaml

    stages = [{"type": "fc", "units": 16, "activation": "sigmoid"}, {"type": "fc", "units": 8, "activation": "sigmoid"}]
    config = {
        "runs_dir": str(tmp_path),
        "name": "sdae",
        "data": {"name": "digits", "limit": 200},
        "objective": {"name": "denoise", "args": {"loss": "bce", "noise": "mask", "level": 0.3}},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
    }
    result = train_stacked(config, stages, finetune_epochs=1)
    recorded = [yaml.safe_load((run / "config.yaml").read_text())["objective"] for run in result.stage_runs]
    assert recorded == [{"name": "stage", "args": {"loss": "bce", "noise": "mask", "level": 0.3}}] * 2
    finetune = yaml.safe_load((result.finetune_run / "config.yaml").read_text())["objective"]
    assert finetune == {"name": "denoise", "args": {"loss": "bce", "noise": "mask", "level": 0.3}}
    with pytest.raises(CaekitError, match=r"objective\.args\.noise"):
        train_stacked({**config, "objective": {"name": "stage", "args": {"level": 0.3}}}, stages)
    relu = [{"type": "fc", "units": 16, "activation": "relu"}, {"type": "fc", "units": 8}]
    with pytest.raises(CaekitError, match="use loss: mse"):  # refused before stage 1 trains: no run folder made
        train_stacked({**config, "name": "relu"}, relu)
    assert not (tmp_path / "relu-stage1").exists()

    # the classic protocol's next step: the whole stack fine-tuned under a classifier, nothing left frozen
    classifier = create_model("encoder_classifier", pretrained=str(result.stage_runs[-1]), mode="finetune", head="linear")
    assert all(p.requires_grad for p in classifier.parameters())
    assert len(classifier.encoder.decoders) == 0  # the decoders are not part of the classifier
    classifier.train()
    assert all(stage.training for stage in classifier.encoder.encoder.stages)
    probe = create_model("encoder_classifier", pretrained=str(result.stage_runs[-1]), mode="linear")
    assert not any(p.requires_grad for p in probe.encoder.parameters())
