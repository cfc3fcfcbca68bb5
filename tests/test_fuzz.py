"""Fuzzing the inputs a user hands caekit: every one either works or raises a CaekitError (one line at the CLI, exit 2),
never another exception, never a hang. A bounded number of examples each, so the suite keeps its time."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from caekit.checkpoint import META_KEY
from caekit.config import RunConfig, dump_config, parse_assignments, parse_config, with_overrides
from caekit.data.datasets import SKIP_CAUSES, read_image
from caekit.errors import CaekitError
from caekit.models.weights import load_trained
from caekit.spec import parse_spec, plan
from caekit.yamlio import parse_yaml

# CAEKIT_FUZZ_EXAMPLES=3000 for the long run BENCHMARKS.md reports; CI keeps to 150 a kind
FUZZ = settings(
    max_examples=int(os.environ.get("CAEKIT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = [
    "train.epochs",
    "train.batch_size",
    "train.seed",
    "train.device",
    "train.scheduler",
    "train.patience",
    "optim.lr",
    "optim.betas",
    "optim.name",
    "optim.weight_decay",
    "data.name",
    "data.root",
    "data.image_size",
    "data.limit",
    "data.channels",
    "data.fit",
    "data.test_fraction",
    "model.name",
    "model.args",
    "objective.name",
    "name",
    "train.epoch",
    "nonsense",
    "train.progress.deep",
]
YAML_SCALARS = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "[1",
            "{a: ",
            "!!python/object/apply:os.system ['x']",
            "&a [*a]",
            "[0.9, 0.999]",
            "cuda:7",
            "tpu",
            "1e-3",
            "-1",
            "0",
            "[2, 5]",
        ]
    ),
)


REFUSED = object()


def _attempt(function, *args) -> object:
    """What ``function`` returns, or ``REFUSED`` when it raised a one-line CaekitError; any other exception fails the
    test. Each outcome is a hypothesis event, so ``--hypothesis-show-statistics`` counts the accepted inputs."""
    try:
        value = function(*args)
    except CaekitError as exc:
        assert "\n" not in str(exc), f"a user error must be one line: {exc!r}"
        event("refused in one line")
        return REFUSED
    event("accepted")
    return value


def _faithful(given: object, kept: object) -> bool:
    """Whether what caekit kept is what the user gave, so that an accepted input is never silently another one:
    every field given is there with its value (numbers equal as numbers, never a boolean for a number or the reverse,
    lists item by item, text as typed)."""
    if isinstance(given, dict):
        return isinstance(kept, dict) and all(k in kept and _faithful(v, kept[k]) for k, v in given.items())
    if isinstance(given, (list, tuple)):
        return isinstance(kept, (list, tuple)) and len(given) == len(kept) and all(map(_faithful, given, kept))
    if isinstance(given, bool) or isinstance(kept, bool):
        return given is kept
    if isinstance(given, str) and isinstance(kept, (int, float)):  # YAML 1.1 reads 1e-3 as text; the schema reads the number
        try:
            return float(given) == kept
        except ValueError:
            return False
    if isinstance(given, (int, float)) and isinstance(kept, (int, float)):
        return given == kept
    return given == kept


def _recorded(config: RunConfig) -> dict:
    """The config as the run folder records it (config.yaml), read back: what a resume or a reader would use."""
    recorded = parse_yaml(dump_config(config), "config.yaml")
    assert parse_config(recorded, "config.yaml") == config  # what is recorded is what ran
    return recorded


def _at(data: dict, dotted: str) -> object:
    for part in dotted.split("."):
        assert isinstance(data, dict) and part in data, f"'{dotted}' was accepted but is not in the config"
        data = data[part]
    return data


@FUZZ
@given(key=st.sampled_from(KEYS), value=YAML_SCALARS)
def test_set_values(key: str, value: object) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    config = _attempt(lambda: with_overrides(RunConfig(), parse_assignments([f"{key}={text}"])))
    if config is not REFUSED:  # accepted: the value as typed, never silently another one
        kept = _at(_recorded(config), key)
        assert _faithful(parse_assignments([f"{key}={text}"])[key], kept), f"--set {key}={text} was taken as {kept!r}"


def _check_config_text(text: str) -> None:
    """A config file's text: refused in one line, or taken field for field as written."""

    def load() -> RunConfig | None:
        data = parse_yaml(text, "c.yaml")
        return parse_config(data, "c.yaml") if isinstance(data, dict) else None  # the CLI refuses a non-mapping

    config = _attempt(load)
    if config is None:
        event("text that is not a mapping (the command line refuses it)")
    if isinstance(config, RunConfig):
        data = parse_yaml(text, "c.yaml")
        assert _faithful(data, _recorded(config)), f"{data!r} was taken as {config!r}"


@FUZZ
@given(text=st.text(max_size=200))
def test_yaml_config_text(text: str) -> None:
    _check_config_text(text)


@FUZZ
@given(data=st.data())
def test_config_files_cut_and_spliced(data: st.DataObject) -> None:
    _check_config_text(_mutated(BASE_CONFIG, data))


LAYER = st.fixed_dictionaries(
    {"type": st.sampled_from(["conv", "pool", "deconv", "unpool", "bogus"])},
    optional={
        "filters": st.integers(-2, 5000),
        "kernel": st.integers(-1, 9),
        "stride": st.integers(-1, 4),
        "padding": st.integers(-1, 4),
        "kind": st.sampled_from(["max", "average", "nearest", "x"]),
        "size": st.integers(-1, 40),
    },
)
SPEC = st.fixed_dictionaries(
    {"input_shape": st.lists(st.integers(-1, 70), min_size=0, max_size=4), "encoder": st.lists(LAYER, max_size=6)},
    optional={
        "upsample": st.sampled_from(["max", "bilinear", "transposed", "nope"]),
        "bottleneck": st.fixed_dictionaries({"code_size": st.integers(-5, 10**10)}),
    },
)


# Specs a user would plausibly write, most of them valid, so that accepted specs are checked for silent changes too.
PLAUSIBLE_SPEC = st.fixed_dictionaries(
    {
        "input_shape": st.tuples(st.sampled_from([1, 3]), st.integers(8, 40), st.integers(8, 40)).map(list),
        "encoder": st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"type": st.just("conv"), "filters": st.integers(1, 32)},
                    optional={"kernel": st.integers(1, 5), "padding": st.integers(0, 2), "stride": st.integers(1, 2)},
                ),
                st.fixed_dictionaries({"type": st.just("pool")}, optional={"kind": st.sampled_from(["max", "average"])}),
            ),
            min_size=1,
            max_size=5,
        ),
    },
    optional={"upsample": st.sampled_from(["max", "average", "fixed", "nearest", "bilinear", "bicubic", "transposed"])},
)


@FUZZ
@given(spec=st.one_of(SPEC, PLAUSIBLE_SPEC))
def test_specs(spec: dict) -> None:
    def planned() -> object:
        parsed = parse_spec(spec, "spec")
        plan(parsed).summary()
        return parsed

    parsed = _attempt(planned)
    if parsed is not REFUSED:
        assert _faithful(spec, parsed.model_dump(mode="json")), f"{spec!r} was taken as {parsed!r}"


HEADER = st.one_of(
    st.text(max_size=50),
    st.builds(
        json.dumps,
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=10,
        ),
    ),
    st.builds(
        lambda name, args, shape: json.dumps(
            {"format": "caekit-checkpoint-1", "model": {"name": name, "args": args}, "image_shape": shape}
        ),
        st.sampled_from(["cae28", "cae", "vae", "nope", "dcgan"]),
        st.one_of(
            st.dictionaries(
                st.sampled_from(["input_shape", "upsample", "latent_dim", "bottleneck", "x"]),
                st.one_of(st.integers(-3, 10**9), st.text(max_size=6), st.lists(st.integers(0, 64), max_size=3)),
                max_size=3,
            ),
            st.integers(),
        ),
        st.one_of(st.lists(st.integers(-1, 10**6), max_size=4), st.text(max_size=4)),
    ),
)


@FUZZ
@given(header=HEADER)
def test_checkpoint_headers(header: str, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.safetensors"
    save_file({"model.weight": torch.zeros(2)}, str(path), metadata={META_KEY: header})
    # No model has exactly these tensors, so a load that succeeds would be a model with weights not from the file.
    assert _attempt(load_trained, path) is REFUSED


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PIXELS = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)
GOOD = _png(GOOD_PIXELS)


@FUZZ
@given(cut=st.integers(0, len(GOOD)), junk=st.binary(max_size=40), suffix=st.sampled_from([".png", ".jpg", ".txt", ""]))
def test_image_files(cut: int, junk: bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(GOOD[:cut] + junk)
    image, why = read_image(path)  # never raises: an image, or None and the reason
    event("accepted" if image is not None else "skipped, counted as " + why.split(":", 1)[0])
    assert (image is None) == bool(why) and (image is None or image.mode == "RGB")
    assert image is not None or why.split(":", 1)[0] in SKIP_CAUSES  # every skip is counted under a cause
    if image is not None:  # a damaged file is refused, never read as other pixels
        assert np.array_equal(np.asarray(image)[..., 0], GOOD_PIXELS), f"cut at {cut} of {len(GOOD)}, {len(junk)} junk bytes"


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "1", "P", "LA", "CMYK"])
def test_image_modes(mode: str, tmp_path: Path) -> None:
    if mode == "I;16":  # a 16-bit image spans 0..65535; it is scaled down, not clipped at 255
        source = Image.fromarray(np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8))
    else:
        source = Image.fromarray(np.linspace(0, 255, 64, dtype=np.uint8).reshape(8, 8)).convert(mode)
    path = tmp_path / ("m.tiff" if mode in ("I;16", "I", "F", "CMYK") else "m.png")
    source.save(path)
    image, why = read_image(path)
    assert image is not None and image.mode == "RGB", (mode, why)
    expected = np.asarray(Image.fromarray(np.linspace(0, 255, 64, dtype=np.uint8).reshape(8, 8)).convert(mode).convert("L"))
    if mode == "I;16":
        expected = np.linspace(0, 255, 64).reshape(8, 8)
    # the grey levels themselves, scaled (16-bit) but never clipped or shifted: at most one level of rounding
    assert np.abs(np.asarray(image)[..., 0].astype(float) - expected).max() <= 1, mode


CLI_KEYS = [k for k in KEYS if k not in ("train.epochs", "train.patience")]  # a valid huge epoch count would just train


@settings(
    max_examples=int(os.environ.get("CAEKIT_FUZZ_CLI_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=st.sampled_from(CLI_KEYS), value=YAML_SCALARS)
def test_set_values_through_the_command_line(key: str, value: object, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 or 2, one line on stderr when 2, no traceback, nothing written outside the runs folder, no file changed."""
    import tempfile

    from conftest import run_cli

    text = value if isinstance(value, str) else json.dumps(value)
    with tempfile.TemporaryDirectory(prefix="caekit-fuzz-") as folder:  # gone afterwards, whatever happened
        work = Path(folder)
        mine = work / "notes.yaml"
        mine.write_text("my own file\n")
        runs = work / "runs"
        code, _, err = run_cli(
            [
                "train",
                "--runs-dir",
                str(runs),
                "--no-progress",
                "--set",
                "data.limit=40",
                "--set",
                "data.image_size=8",
                "--set",
                "train.epochs=1",
                "--set",
                "train.verbose=false",
                "--set",
                f"{key}={text}",
            ],
            capsys,
        )
        event(f"exit {code}")
        assert code in (0, 2), err
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and err.startswith("caekit: error:"), err
        assert "Traceback" not in err
        assert (
            sorted(p.name for p in work.iterdir()) in (["notes.yaml"], ["notes.yaml", "runs"])
            and mine.read_text() == "my own file\n"
        )
        given = parse_assignments([f"{key}={text}"])[key] if code == 0 else None
        if given is not None:  # the run recorded, and so ran with, the value as typed (null: the default, resolved)
            (recorded,) = runs.glob("*/config.yaml")
            kept = _at(parse_yaml(recorded.read_text(), str(recorded)), key)
            assert _faithful(given, kept), f"--set {key}={text} ran as {kept!r}"


# ------------------------------------------------------------------------------------------- whole files via the CLI

CLI_FUZZ = settings(
    max_examples=int(os.environ.get("CAEKIT_FUZZ_CLI_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE_CONFIG = "model: {name: cae28}\ndata: {name: digits, limit: 40, image_size: 8}\ntrain: {epochs: 1, verbose: false}\n"


def _mutated(text: str, data: st.DataObject) -> str:
    """``text`` cut somewhere and spliced with a few characters a careless or hostile hand might type."""
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.one_of(st.text(max_size=8), st.sampled_from(["{", "]", ": :", "\t", "&a *a", "!!binary x", "\x00"])))
    rest = data.draw(st.integers(cut, len(text)))
    return text[:cut] + junk + text[rest:]


def _cli_outcome(args: list[str], work: Path, mine: Path, keep: set[str], capsys: pytest.CaptureFixture[str]) -> int:
    """Run the CLI: exit 0 or 2, one line when 2, no traceback, the user's file unchanged, nothing new beside it
    but the names in ``keep``."""
    from conftest import run_cli

    before = mine.read_bytes()
    code, _, err = run_cli(args, capsys)
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("caekit: error:"), err
    assert "Traceback" not in err
    assert mine.read_bytes() == before
    assert {p.name for p in work.iterdir()} <= {mine.name, *keep}
    return code


@CLI_FUZZ
@given(data=st.data())
def test_config_files_through_the_command_line(data: st.DataObject, capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caekit-fuzz-") as folder:  # gone afterwards, whatever happened
        work = Path(folder)
        config = work / "mine.yaml"
        text = _mutated(BASE_CONFIG, data)
        config.write_bytes(text.encode("utf-8", "surrogatepass"))
        code = _cli_outcome(
            ["train", str(config), "--runs-dir", str(work / "runs"), "--no-progress"], work, config, {"runs"}, capsys
        )
        if code == 0:  # the run recorded, and so ran with, every field as the file has it
            (recorded,) = (work / "runs").glob("*/config.yaml")
            assert _faithful(parse_yaml(text, "mine.yaml"), parse_yaml(recorded.read_text(), str(recorded))), text


@CLI_FUZZ
@given(spec=st.one_of(SPEC, PLAUSIBLE_SPEC))
def test_spec_files_through_the_command_line(spec: dict, capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caekit-fuzz-") as folder:  # gone afterwards, whatever happened
        work = Path(folder)
        path = work / "spec.json"
        path.write_text(json.dumps(spec))
        _cli_outcome(["summary", str(path)], work, path, set(), capsys)


@CLI_FUZZ
@given(header=HEADER)
def test_checkpoint_files_through_the_command_line(header: str, capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caekit-fuzz-") as folder:  # gone afterwards, whatever happened
        work = Path(folder)
        checkpoint = work / "model.safetensors"
        save_file({"model.weight": torch.zeros(2)}, str(checkpoint), metadata={META_KEY: header})
        image = work / "digit.png"
        image.write_bytes(GOOD)
        out = work / "out"
        code = _cli_outcome(
            ["reconstruct", str(image), "--run", str(checkpoint), "--out", str(out)],
            work,
            checkpoint,
            {"digit.png", "out"},
            capsys,
        )
        assert image.read_bytes() == GOOD and (code == 2 or out.is_dir())
