"""Bad input is a one-line error with exit code 2, before any data is loaded or trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SPEC
from PIL import Image

from bench.cli.main import main
from bench.run import plan


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if data were loaded: the checks must come first."""
    loaded: list[str] = []

    def refuse(*args, **kwargs):
        loaded.append("loaded")
        raise AssertionError("data were loaded before the input was checked")

    monkeypatch.setattr(plan, "load_imageset", refuse)
    return loaded


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "-1"], "seeds are integers of 0 or more"),
        (["--seeds", "0,0"], "seed 0 is given twice"),
        (["--data-seeds", "-1"], "seeds are integers of 0 or more"),
        (["--seeds", "4-2"], "runs backwards"),
        (["--image-size", "1"], "'image_size' = 1 is out of range"),
        (["--lr", "nan"], "argument --lr: expected a finite number, got nan"),
        (["--lr", "-0.1"], "'lr' = -0.1 is out of range"),
        (["--backbone", "resnet18", "--image-size", "16"], "resnet18 needs images of at least 32"),
        (["--pretrained"], "resnet-compact has no pretrained weights"),
    ],
)
def test_bad_options_fail_before_loading(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_loading: list[str],
    extra: list[str],
    message: str,
) -> None:
    argv = ["run", "--dataset", "tiny", "--methods", "ce", "--results-dir", str(tmp_path)]
    assert message in _error([*argv, *extra], capsys)


def test_pretrained_weights_missing_from_the_hub_cache_are_refused_up_front(
    tiny_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_loading: list[str],
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    argv = ["run", "--dataset", "tiny", "--methods", "ce", "--backbone", "resnet18"]
    argv += ["--image-size", "32", "--pretrained", "--results-dir", str(tmp_path / "r")]
    err = _error(argv, capsys)
    assert "not in torch's hub cache" in err and "nothing is downloaded" in err
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[loss]\nname = "focal"\ngamma = -5.0\n',
            "[loss] field 'gamma' = -5.0 is out of range; use a finite value of 0 or more",
        ),
        (
            '[loss]\nname = "ldam"\nscale = 0\n',
            "[loss] field 'scale' = 0.0 is out of range; use a finite value > 0",
        ),
        ('[loss]\nname = "ce"\n[metric]\nname = "supcon"\ntemperature = 0.0\n', "> 0"),
    ],
)
def test_recipe_values_out_of_range_name_file_and_field(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_loading: list[str],
    text: str,
    message: str,
) -> None:
    (tiny_project / "methods" / "bad.toml").write_text('description = "x"\n' + text)
    err = _error(["run", "--dataset", "tiny", "--methods", "ce", "--results-dir", "x"], capsys)
    assert message in err and "bad.toml" in err


def test_stage2_values_out_of_range_are_refused(
    tiny_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_project / "methods" / "crt.toml"
    recipe.write_text(recipe.read_text().replace("batch_size = 128", "batch_size = 0"))
    err = _error(["run", "--dataset", "tiny", "--methods", "ce+crt"], capsys)
    assert "crt.toml: [stage2] field 'batch_size' = 0 is out of range" in err


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "[split]\nval = 0.2",
            "[split]\nvall = 0.2",
            "[split]: unknown key(s) vall ('vall': did you mean 'val'?)",
        ),
        ('classes = ["nv"', 'clases = ["nv"', "unknown key(s) clases ('clases': did you mean"),
        ("n_images = 420", "n_image = 420", "[params]: unknown key(s) n_image"),
        ("[training]", "[metrics]\nshots = 3\n[training]", "[metrics]: unknown key(s) shots"),
        ("[split]\nval = 0.2", '[split]\nkeep = ["train"]\nval = 0.2', "keep = ['train'] must"),
        ("[split]\nval = 0.2", '[split]\nkeep = [["test"]]\nval = 0.2', "each once, among"),
        ("[split]\nval = 0.2", '[split]\nkeep = ["test", "test"]\nval = 0.2', "each once, among"),
    ],
)
def test_typos_in_a_dataset_spec_are_errors(
    tiny_project: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str,
) -> None:
    assert old in TINY_SPEC
    (tiny_project / "datasets" / "tiny.toml").write_text(TINY_SPEC.replace(old, new))
    assert message in _error(["run", "--dataset", "tiny", "--methods", "ce"], capsys)


def _folder(root: Path, classes: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for k in range(6):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def test_a_one_class_dataset_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data", ["only"])
    argv = ["run", "--dataset", f"imagefolder:{data}", "--methods", "ce"]
    err = _error([*argv, "--results-dir", str(tmp_path / "r")], capsys)
    assert "holds 1 class(es) (only); a classification benchmark needs at least 2" in err


def test_an_empty_csv_label_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data", ["a", "b"])
    rows = [f"{c}/{k}.png,{c}" for c in "ab" for k in range(6)]
    rows[-1] = "b/5.png, "  # the 12th row: line 13 of the file
    (data / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    argv = ["run", "--dataset", f"csv:{data / 'labels.csv'}", "--methods", "ce"]
    err = _error([*argv, "--results-dir", str(tmp_path / "r")], capsys)
    assert "labels.csv, line 13: the label is empty" in err


def test_unwritable_results_or_cache_fail_before_loading(
    tiny_project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_loading: list[str],
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    argv = ["run", "--dataset", "tiny", "--methods", "ce"]
    err = _error([*argv, "--results-dir", str(a_file)], capsys)
    assert "the results folder" in err and "is not a writable folder" in err
    assert "--results-dir" in err
    err = _error([*argv, "--results-dir", str(tmp_path / "r"), "--cache-dir", str(a_file)], capsys)
    assert f"the cache {a_file} is not a writable folder" in err and "--cache-dir" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--dataset", "tiny", "--seeds", "0-99999999"], "more than 1000 seeds"),
        (
            ["sweep", "--method", "ce+crt", "--dataset", "tiny", "--seed", "-1"],
            "expected an integer of 0 or more",
        ),
    ],
)
def test_bad_command_line_values_are_one_line(
    tiny_project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _error(argv, capsys)


def test_a_synthetic_spec_with_other_classes_is_refused(
    tiny_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = TINY_SPEC.replace(
        'classes = ["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"]', 'classes = ["nv"]'
    )
    (tiny_project / "datasets" / "tiny.toml").write_text(spec)
    results = str(tiny_project / "r")
    err = _error(["run", "--dataset", "tiny", "--methods", "ce", "--results-dir", results], capsys)
    assert "the synthetic generator draws HAM10000's seven classes" in err


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[metric]\nname = "supcon"\nweight = nan\n',
            "[metric] field 'weight' = nan is out of range",
        ),
        (
            '[metric]\nname = "supcon"\ntemperature = 0.1\n[search]\n'
            '"metric.temperature" = { low = 0.0, high = 1.0 }\n',
            "reaches [0.0, 1.0], outside the field's valid values (> 0)",
        ),
    ],
)
def test_non_finite_weights_and_search_ranges_outside_a_field_are_refused(
    tiny_project: Path, capsys: pytest.CaptureFixture[str], table: str, message: str
) -> None:
    (tiny_project / "methods" / "bad.toml").write_text(
        'description = "x"\n[loss]\nname = "ce"\n' + table
    )
    argv = ["sweep", "--method", "bad+crt", "--dataset", "tiny"]
    argv += ["--results-dir", str(tiny_project / "r")]
    err = _error(argv, capsys)
    assert message in err and "bad.toml" in err
