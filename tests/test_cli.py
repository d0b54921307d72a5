"""The command line starts fast, imports nothing heavy, and explains itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from typer.testing import CliRunner

from mvcap_build.cli import app

HEAVY = ("bpy", "torch", "vllm", "transformers", "datasets", "ray", "submitit")


def test_cli_import_does_not_load_heavy_modules():
    code = (
        "import sys, json; import mvcap_build.cli; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_help_is_fast_and_lists_every_stage():
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "mvcap_build", "--help"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        assert result.returncode == 0, result.stderr
    for command in (
        "build",
        "render",
        "extract",
        "caption",
        "export",
        "train-ovt",
        "status",
        "preview",
        "caption-report",
        "eval",
    ):
        assert command in result.stdout
    assert best < 1.0, f"mvcap --help took {best:.2f} s at best"


def test_each_command_has_help():
    runner = CliRunner()
    for command in (
        "build",
        "render",
        "extract",
        "caption",
        "export",
        "train-ovt",
        "status",
        "preview",
        "caption-report",
        "eval",
    ):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_status_of_missing_root_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["status", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no dataset root" in result.output


def test_status_reports_each_stage_and_failures(captioned_root, copy_of):
    from mvcap_build.dataset import DatasetRoot, FailureLedger

    root = copy_of(captioned_root)
    FailureLedger(DatasetRoot(root), "render").record("demo/lamp-000", "timeout", "no answer within 1 s")
    result = CliRunner().invoke(app, ["status", str(root)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "3 (demo: 3)" in lines["objects"]
    assert "│ 3 " in lines["render"] and "12" in lines["render"] and "timeout: 1" in lines["render"]
    assert "12" in lines["caption"]
    assert "not exported yet" in lines["export"]
    assert "categories: car (1), chair (1), mug (1)" in result.output


def test_status_puts_export_and_train_details_in_their_own_column(captioned_root, copy_of):
    root = copy_of(captioned_root)
    (root / "export").mkdir()
    (root / "export" / "export.json").write_text(
        json.dumps({"objects": 3, "views": 12, "parquet_files": ["data/train-00000-of-00001.parquet"]})
    )
    (root / "train" / "ovt" / "checkpoints" / "step-00000002").mkdir(parents=True)
    result = CliRunner().invoke(app, ["status", str(root)])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("┃"))
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    assert columns == ["stage", "objects", "views", "failures", "stale", "details"]
    rows = {
        cells[0]: dict(zip(columns, cells))
        for line in result.output.splitlines()
        if line.startswith("│")
        for cells in [[cell.strip() for cell in line.strip("│").split("│")]]
    }
    assert rows["export"]["failures"] == "" and rows["export"]["details"] == "1 parquet file(s)"
    assert (
        rows["train"]["failures"] == ""
        and rows["train"]["details"] == "latest checkpoint: train/ovt/checkpoints/step-00000002"
    )
    assert rows["render"]["failures"] == "0" and rows["render"]["details"] == ""


def test_render_without_a_source_says_it_renders_the_demo(tmp_path):
    # shard 0 of 1000 holds none of the 30 demo objects: nothing renders, the message still shows
    result = subprocess.run(
        [sys.executable, "-m", "mvcap_build", "render", str(tmp_path / "root"), "--shard", "0", "--num-shards", "1000"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "no --source given: rendering the embedded demo" in result.stderr
    quiet = subprocess.run(
        [
            sys.executable,
            "-m",
            "mvcap_build",
            "render",
            str(tmp_path / "root2"),
            "--source",
            "demo",
            "--shard",
            "0",
            "--num-shards",
            "1000",
        ],
        capture_output=True,
        text=True,
    )
    assert quiet.returncode == 0 and "no --source given" not in quiet.stderr


# --help, read at a width where no help line wraps, so substrings can be checked
WIDE = {"COLUMNS": "200"}


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def _commands() -> dict:
    import typer

    return typer.main.get_command(app).commands


def _option_row(output: str, flag: str) -> str:
    """The help row of one option, its continuation lines included."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"│\s+{re.escape(flag)}(\s|,)", line))
    row = [lines[start]]
    for line in lines[start + 1 :]:
        if re.match(r"│\s+-", line) or not line.startswith("│"):
            break
        row.append(line)
    return " ".join(" ".join(line.strip("│ ").split()) for line in row)


def test_stage_flags_show_the_config_defaults():
    from mvcap_build.extract.config import FramesConfig
    from mvcap_build.render.config import RenderConfig
    from mvcap_build.train.config import TrainStageConfig

    render, frames, train = RenderConfig(), FramesConfig(), TrainStageConfig()
    expected = {
        "render": {
            "--resolution": render.resolution,
            "--num-views": render.views.num_views,
            "--samples": render.samples,
            "--lighting": render.lighting.preset,
            "--source": render.source.kind,
        },
        "extract": {"--resolution": frames.resolution, "--num-frames": frames.num_frames},
        "train-ovt": {"--clip-model": train.clip_model, "--lr": train.lr, "--max-steps": train.max_steps},
    }
    for command, flags in expected.items():
        output = _help(command)
        for flag, value in flags.items():
            row = _option_row(output, flag)
            assert (f"[default: {value}]" in row) if value is not None else ("[default:" not in row), (
                command,
                flag,
                row,
            )


def test_config_default_reads_nested_and_optional_fields():
    from mvcap_build.cli.defaults import config_default
    from mvcap_build.export.config import ExportConfig, TrainingImagesConfig
    from mvcap_build.render.config import RenderConfig, ViewsConfig

    assert config_default(RenderConfig, "views.num_views") == ViewsConfig().num_views
    assert config_default(RenderConfig, "source.kind") == RenderConfig().source.kind
    assert (
        config_default(ExportConfig, "training_images.quality") == TrainingImagesConfig().quality
    )  # a section that defaults to None
    assert config_default(RenderConfig, "views.distance") is None


def test_help_keeps_angle_bracket_text():
    assert "ROOT/views/<source>/<instance>/" in _help("extract")
    assert "<category>/<instance>/" in _help("extract")
    assert "ROOT/views/<source>/<instance>/" in _help()


def test_help_drops_no_word_of_any_command():
    # markdown help eats what looks like HTML (`<source>`); every word written must be shown
    for name, command in _commands().items():
        output = _help(name)
        texts = [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]
        words = {word for text in texts for word in text.split("\f")[0].replace("`", "").split()}
        assert not sorted(w for w in words if w not in output), name


def test_flags_show_no_value_type():
    for command in ((), *((name,) for name in _commands())):
        assert "<bool>" not in _help(*command), command


def test_version():
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "mvcap_build", "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"mvcap-build {version('mvcap-build')}" in result.stdout
    assert f"Python {sys.version.split()[0]}" in result.stdout


def test_shell_completion():
    output = _help()
    assert "--install-completion" in output and "--show-completion" in output
    result = CliRunner().invoke(
        app,
        [],
        prog_name="mvcap",
        env={"_MVCAP_COMPLETE": "complete_bash", "COMP_WORDS": "mvcap ren", "COMP_CWORD": "1"},
    )
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["render"]
