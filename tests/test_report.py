"""HTML run reports: self-contained pages with every picture of a run, checked in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from caekit import api
from caekit.checkpoint import source_commit
from caekit.cli import cli
from caekit.errors import CheckpointError
from caekit.report import config_differences, expand_runs, find_pictures, write_reports
from caekit.runs import RunFolder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real runs on the bundled digits that differ in learning rate and epochs, one with extra pictures."""
    folder = tmp_path_factory.mktemp("runs")
    made = []
    for name, lr, epochs in (("slow", 1e-4, 1), ("fast", 3e-3, 2)):
        config = {
            "name": name,
            "runs_dir": str(folder),
            "model": {"name": "cae28"},
            "optim": {"lr": lr},
            "data": {"name": "digits", "image_size": 16, "limit": 64},
            "train": {"epochs": epochs, "batch_size": 32, "progress": False},
        }
        made.append(api.train(config).run.path)
    # What other parts of caekit leave in a run folder: pictures in sub-folders and JSON evaluations.
    (made[1] / "embeddings").mkdir()
    Image.new("RGB", (40, 30), "red").save(made[1] / "embeddings" / "tsne.png")
    Image.new("RGB", (20, 20), "blue").save(made[1] / "confusion_matrix.png")
    (made[1] / "linear_probe.json").write_text('{"accuracy": 0.875, "classes": 10}')
    return made


def _count_pictures(run: Path) -> int:
    """The run's pictures a page shows: all but curves.png, whose metrics the page draws itself."""
    return sum(
        1 for p in run.rglob("*.png") if not {"tb", "checkpoints"} & set(p.relative_to(run).parts) and p.name != "curves.png"
    )


def test_pages_are_self_contained_and_hold_every_picture(runs: list[Path], tmp_path: Path) -> None:
    index, *pages = write_reports(runs, tmp_path / "out")
    assert [p.name for p in pages] == ["slow.html", "fast.html"]
    for run, page in zip(runs, pages):
        text = page.read_text()
        sources = re.findall(r'src="([^"]*)"', text)
        assert sources and all(s.startswith("data:image/") for s in sources)  # nothing outside the page
        assert "<script" not in text and "http://" not in text and "https://" not in text
        assert len(sources) == _count_pictures(run) + 1  # every picture of the run, plus the metric curves
        epochs = len(RunFolder(run).read_metrics())
        assert len(re.findall(r"<tr[ >]", text.split("Metrics per epoch")[1].split("</table>")[0])) == epochs + 1
    fast = pages[1].read_text()
    assert "embeddings/tsne.png" in fast and "confusion_matrix.png" in fast
    assert "linear_probe.json" in fast and "0.875" in fast
    assert fast.index("<h2>Curves</h2>") < fast.index("reconstructions.png") < fast.index("embeddings/tsne.png")
    assert "curves.png" not in fast  # each curve once: the page draws every metric itself
    assert "<h2>Environment</h2>" in fast and "torchvision" in fast and "parameters</p>" in fast
    assert "conv1" in fast and "mult-adds" in fast.lower()  # the layer table of the spec-built model
    text = index.read_text()
    assert 'href="./slow.html"' in text and 'href="./fast.html"' in text
    assert "optim.lr" in text and "train.epochs" in text and "model.name</th>" not in text  # only what differs
    assert "reconstructions.png, side by side" in text


def test_source_commit_is_caekits_own() -> None:
    commit = source_commit()
    if (Path(__file__).parents[1] / ".git").exists():
        assert commit is not None and re.fullmatch(r"[0-9a-f]{12}(\+changes)?", commit)
    else:  # a copy of the tree without its history
        assert commit is None


def test_config_differences_and_run_discovery(runs: list[Path], tmp_path: Path) -> None:
    assert config_differences([{"a": {"b": 1, "c": 2}, "name": "x"}, {"a": {"b": 1, "c": 3}, "name": "y"}]) == ["a.c"]
    assert expand_runs([runs[0].parent]) == sorted(runs)  # a folder of runs (a search) stands for its runs
    assert [p.name for p in find_pictures(runs[1])][:2] == ["curves.png", "reconstructions.png"]
    with pytest.raises(CheckpointError, match="neither a caekit run folder"):
        expand_runs([tmp_path])


def test_cli_report(runs: list[Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", *map(str, runs), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "2 run page(s)" in result.output and (tmp_path / "r" / "index.html").is_file()


def _browser() -> tuple[str, str]:
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (scripts/install-browser.sh)")
    pytest.importorskip("selenium", reason="the selenium package drives the browser: pip install selenium")
    return chromium, driver


def test_pages_render_in_headless_chromium(runs: list[Path], tmp_path: Path) -> None:
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    index, *pages = write_reports(runs, tmp_path / "out")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1024"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        for page in [index, *pages]:
            browser.get(page.resolve().as_uri())
            images = browser.execute_script(
                "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]);"
            )
            assert images, f"{page.name} shows no image"
            broken = [alt for complete, width, height, alt in images if not (complete and width > 0 and height > 0)]
            assert not broken, f"{page.name}: images that did not render: {broken}"
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"{page.name}: console errors {errors}"
            assert browser.title.endswith("caekit run") or browser.title == "caekit runs"
        # What a reader looks for on a run page is there and drawn: each section once, the metric curves as one
        # picture, every picture captioned, the layer table with its parameter count, the environment.
        browser.get(pages[1].resolve().as_uri())
        sections = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
        for wanted in ("Metrics per epoch", "Curves", "Pictures", "Configuration", "Model", "Environment"):
            assert sections.count(wanted) == 1, f"section {wanted!r} shown {sections.count(wanted)} times: {sections}"
        after = "return Array.from(document.querySelectorAll('h2')).find(h => h.textContent === arguments[0]).nextElementSibling;"
        curves = browser.execute_script(after, "Curves").find_elements("tag name", "img")
        assert len(curves) == 1 and curves[0].size["width"] >= 600  # one picture of every metric, readable size
        captions = browser.execute_script("return Array.from(document.querySelectorAll('figcaption')).map(c => c.textContent);")
        assert captions and all(c.strip() for c in captions) and "reconstructions.png" in captions
        model = browser.execute_script(after, "Model").text
        assert re.search(r"[\d,]+ parameters", model)
        layers = browser.execute_script(after, "Model").find_element("xpath", "following-sibling::pre").text
        assert "conv1" in layers and "pool" in layers  # the layer table, not the raw config
        environment = dict(
            row.text.split(" ", 1)
            for row in browser.execute_script(after, "Environment").find_elements("css selector", "tbody tr")
        )
        assert {"caekit", "torch", "torchvision", "device", "date", "command"} <= environment.keys(), environment
        assert environment.get("commit") == source_commit()  # a checkout's commit; none for an installed wheel
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )  # no sideways scroll
        # The index links to the run pages, and they open.
        browser.get(index.resolve().as_uri())
        browser.find_element("link text", "fast").click()
        assert browser.title == "fast: caekit run"
        assert browser.execute_script("return document.querySelectorAll('tr.best').length") == 1
    finally:
        browser.quit()


def test_titled_painter_names_the_run_and_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every picture an objective draws in a run says which run and which epoch's weights it shows."""
    from caekit.viz import painter

    seen: list[str | None] = []

    def sample_grid(images: object, path: Path, title: str | None = None, columns: int = 8) -> Path:
        seen.append(title)
        return path

    monkeypatch.setattr(painter, "sample_grid", sample_grid)
    draw = painter.Titled("mnist-cae28, epoch 7")
    draw.sample_grid(None, tmp_path / "a.png")
    draw.sample_grid(None, tmp_path / "b.png", "samples from the prior")
    draw.sample_grid(None, tmp_path / "c.png", title="samples", columns=4)
    assert seen == ["mnist-cae28, epoch 7", "samples from the prior (mnist-cae28, epoch 7)", "samples (mnist-cae28, epoch 7)"]
    assert draw.interpolation is painter.interpolation  # pictures without a title pass through
    with pytest.raises(AttributeError):
        draw.not_a_picture  # noqa: B018
