"""Where train-ovt and eval find their CLIP (a folder, the Hugging Face cache, the Hub), and their
user errors: one line, exit 2, with what to do, as in the other stages.

huggingface_hub reads HF_HOME and HF_ENDPOINT when it is imported, so the tests that need an empty
cache or a Hub of their own run `mvcap` in a child process. The only fakes are at the network
boundary: a closed port, an HTTP server answering 404 (tests/fake_hub.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from torch_fixtures import _datasets_cache, _one_thread  # noqa: F401 - autouse fixtures

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

from fake_hub import FakeHub
from test_train_ovt import write_export
from typer.testing import CliRunner

from mvcap_build.cli import app
from mvcap_build.tiny_models.tiny_clip import build_tiny_clip

HUB_CLIP = "openai/clip-vit-base-patch32"  # train-ovt's default; never downloaded here
TINY_ID = "tiny-org/tiny-clip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SMALL_RUN = ["--max-steps", "1", "-P", "4", "-V", "4", "--hard-views", "2", "--num-workers", "0"]

# Runs `mvcap ARGS...` in the child, recording every network attempt to the file in $NET_LOG.
MVCAP_WATCHING_THE_NETWORK = """
import os, sys
log = os.environ["NET_LOG"]
def record(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        with open(log, "a") as f:
            f.write(f"{event} {args[1:]!r}\\n")
sys.addaudithook(record)
sys.argv = ["mvcap", *sys.argv[1:]]
from mvcap_build.cli import main
main()
"""


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(
        tmp_path_factory.mktemp("models") / "tiny-clip",
        texts=["a red square", "a green circle", "a photo of a square", "a photo of a circle"],
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, Path]:
    """An ImageFolder benchmark of two classes, one image each, and its class-name file."""
    root = tmp_path_factory.mktemp("bench")
    for i, name in enumerate(["square", "circle"]):
        (root / "images" / name).mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 80 * i, 30)).save(root / "images" / name / "a.png")
    (root / "classes.txt").write_text("circle\nsquare\n")
    return root / "images", root / "classes.txt"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child_env(hf_home: Path, endpoint: str) -> dict[str, str]:
    """No HF_* of this machine; offline mode explicitly off, so only the network can say no."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=endpoint,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        OMP_NUM_THREADS="1",
        COLUMNS="200",
    )
    return env


def _mvcap(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mvcap_build", *args], env=env, capture_output=True, check=False, text=True, timeout=180
    )
    return result, time.monotonic() - start


def _command(name: str, model: str, export_dir: Path, bench: tuple[Path, Path], out: Path) -> list[str]:
    if name == "train-ovt":
        return ["train-ovt", str(export_dir), "-o", str(out), "--clip-model", model, *SMALL_RUN]
    return ["eval", model, "--imagefolder", str(bench[0]), "--classnames", str(bench[1]), "-o", str(out)]


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output and "Retrying" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.parametrize("command", ["train-ovt", "eval"])
def test_an_uncached_model_without_network_fails_within_seconds_in_one_line(command, export_dir, bench, tmp_path):
    """The issue's case: offline, train-ovt's default CLIP retried for 58 s and printed ~250 lines."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = _child_env(tmp_path / "hf-home", endpoint)

    result, elapsed = _mvcap(_command(command, HUB_CLIP, export_dir, bench, tmp_path / "out"), env)

    assert result.returncode == 2, result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    error = _one_error_line(result.stdout + result.stderr)
    assert "not in the local Hugging Face cache" in error and str(tmp_path / "hf-home" / "hub") in error
    assert f"{endpoint} cannot be reached" in error and f"hf download {HUB_CLIP}" in error
    assert ("tiny-random" in error) == (command == "train-ovt")  # what else train-ovt can start from
    assert not (tmp_path / "out").exists()
    print(f"{command} offline: {elapsed:.1f} s")


@pytest.mark.parametrize("command", ["train-ovt", "eval"])
def test_a_model_the_hub_does_not_have_is_one_unknown_model_line(command, export_dir, bench, tmp_path):
    hub = FakeHub().start()
    try:
        env = _child_env(tmp_path / "hf-home", hub.url)
        result, elapsed = _mvcap(_command(command, "some-org/no-such-clip", export_dir, bench, tmp_path / "out"), env)
    finally:
        hub.stop()

    assert result.returncode == 2, result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    error = _one_error_line(result.stdout + result.stderr)
    assert "unknown model 'some-org/no-such-clip'" in error and "check the name" in error
    assert any("/api/models/some-org/no-such-clip" in request for request in hub.requests)  # asked once, briefly
    assert sum("no-such-clip" in request for request in hub.requests) == 1


def _lay_out_as_hub_cache(model_dir: Path, hf_home: Path, repo_id: str, commit: str) -> None:
    """Copy a saved model where `hf download` would have put it."""
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


@pytest.mark.parametrize("command", ["train-ovt", "eval"])
def test_a_cached_hub_model_loads_without_any_network_request(command, tiny_clip, export_dir, bench, tmp_path):
    hf_home = tmp_path / "hf-home"
    _lay_out_as_hub_cache(tiny_clip, hf_home, TINY_ID, COMMIT)
    env = _child_env(hf_home, f"http://127.0.0.1:{_closed_port()}") | {"NET_LOG": str(tmp_path / "net.log")}
    env["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"  # datasets' usage counter for its Parquet loader: no model request
    out = tmp_path / "out"

    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", MVCAP_WATCHING_THE_NETWORK, *_command(command, TINY_ID, export_dir, bench, out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - start

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Retrying" not in result.stderr
    attempts = (tmp_path / "net.log").read_text() if (tmp_path / "net.log").exists() else ""
    assert attempts == "", attempts
    if command == "train-ovt":
        meta = json.loads(next((out / "checkpoints").glob("step-*/ovt_config.json")).read_text())
        assert meta["base_model"] == TINY_ID  # the id is recorded, not the cache folder it was read from
    else:
        assert (out / "results.json").is_file()
    print(f"{command} from the cache: {elapsed:.1f} s")


# --- errors of the user's own files, in process (no network involved) -----------------------------


def _invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    return result, result.output


@pytest.fixture
def not_a_clip(tmp_path) -> Path:
    folder = tmp_path / "bert-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    return folder


@pytest.mark.parametrize("command", ["train-ovt", "eval"])
def test_a_folder_that_is_not_a_clip_is_one_line(command, not_a_clip, export_dir, bench, tmp_path):
    result, output = _invoke(_command(command, str(not_a_clip), export_dir, bench, tmp_path / "out"))
    assert result.exit_code == 2, output
    error = _one_error_line(output)
    assert f"{not_a_clip} is not a CLIP model" in error and "model_type 'bert'" in error


def test_a_missing_model_folder_is_one_line(export_dir, tmp_path):
    missing = tmp_path / "no" / "such-clip"
    result, output = _invoke(
        ["train-ovt", str(export_dir), "-o", str(tmp_path / "out"), "--clip-model", str(missing), *SMALL_RUN]
    )
    assert result.exit_code == 2, output
    assert f"CLIP model folder {missing} does not exist" in _one_error_line(output)


def test_too_few_objects_for_a_batch_is_one_line_before_any_model_loads(export_dir, tmp_path):
    result, output = _invoke(
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(tmp_path / "out"),
            "--clip-model",
            "tiny-random",
            "--max-steps",
            "1",
            "-P",
            "50",
            "-V",
            "2",
            "--hard-views",
            "1",
            "--num-workers",
            "0",
        ]
    )
    assert result.exit_code == 2, output
    error = _one_error_line(output)
    assert "the export has 6 objects but objects_per_batch is 50" in error and "lower objects_per_batch" in error
    assert not (tmp_path / "out" / "base-model").exists()  # stopped before building the model


def test_a_broken_mvcap_metadata_file_is_one_line(tmp_path):
    released = tmp_path / "mvcap"
    released.mkdir()
    (released / "metadata.json").write_text(json.dumps([{"path": "a.png", "caption": "a chair"}]))  # no obj_id
    result, output = _invoke(
        ["train-ovt", str(released), "-o", str(tmp_path / "out"), "--clip-model", "tiny-random", *SMALL_RUN]
    )
    assert result.exit_code == 2, output
    assert "not MVCap's metadata" in _one_error_line(output)


def test_training_ready_images_that_the_export_lacks_are_one_line(export_dir, tmp_path):
    result, output = _invoke(
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(tmp_path / "out"),
            "--clip-model",
            "tiny-random",
            "--images",
            "training",
            *SMALL_RUN,
        ]
    )
    assert result.exit_code == 2, output
    assert "has no training-ready shards" in _one_error_line(output)


def test_an_ovt_checkpoint_on_an_uncached_hub_base_is_one_line_offline(bench, tmp_path):
    """eval loads a checkpoint's base CLIP by its Hub id: offline that too is one line, in seconds."""
    from mvcap_build.ovt.checkpoint import CONFIG_FILE, FORMAT
    from mvcap_build.train.config import TrainOVTConfig

    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000001"
    checkpoint.mkdir(parents=True)
    config = TrainOVTConfig(clip_model=HUB_CLIP).model_dump(mode="json")
    (checkpoint / CONFIG_FILE).write_text(
        json.dumps({"format": FORMAT, "step": 1, "base_model": HUB_CLIP, "config": config})
    )
    env = _child_env(tmp_path / "hf-home", f"http://127.0.0.1:{_closed_port()}")

    result, elapsed = _mvcap(
        [
            "eval",
            str(checkpoint),
            "--imagefolder",
            str(bench[0]),
            "--classnames",
            str(bench[1]),
            "-o",
            str(tmp_path / "out"),
        ],
        env,
    )

    assert result.returncode == 2, result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s"
    error = _one_error_line(result.stdout + result.stderr)
    assert f"model '{HUB_CLIP}' is not in the local Hugging Face cache" in error
    assert f"or load {checkpoint} where its base model is cached" in error


def test_converted_errors_are_still_the_builtins_library_callers_catch(tmp_path):
    from mvcap_build.errors import UserError
    from mvcap_build.ovt.checkpoint import read_checkpoint_config
    from mvcap_build.train.data import ExportData

    (tmp_path / "empty" / "data").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no Parquet shards") as caught:
        ExportData.open(tmp_path / "empty")
    assert isinstance(caught.value, UserError)
    with pytest.raises(FileNotFoundError, match="is not an OVT checkpoint") as caught:
        read_checkpoint_config(tmp_path)
    assert isinstance(caught.value, UserError)
