"""Two processes under `accelerate launch` on CPU (gloo): the contrastive loss is over the global
batch, as one process computing it on the whole batch, and the trainer runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from mvcap_build.train.loss import ContrastiveLoss  # noqa: E402

ACCELERATE = [
    str(Path(sys.executable).parent / "accelerate"),
    "launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]
SCRIPTS = Path(__file__).parent / "scripts"


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # No GPU here: accelerate's multi-process launcher (torchrun) with gloo on CPU.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*ACCELERATE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_gathered_loss_equals_the_one_process_loss_on_the_global_batch(tmp_path):
    _launch([str(SCRIPTS / "gathered_contrastive.py"), str(tmp_path)], tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]

    torch.manual_seed(0)  # the script's global batch, in one process
    image = F.normalize(torch.randn(8, 6), dim=-1).requires_grad_(True)
    text = F.normalize(torch.randn(8, 6), dim=-1)
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = ContrastiveLoss()(image, text, torch.tensor(10.0), ids)["contrastive_loss"]
    loss.backward()
    for rank, got in enumerate(ranks):
        assert got["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
        # Each process's images get the global loss's gradient from both processes: 2x, which
        # DDP's average over the 2 processes brings back to the one-process gradient.
        assert torch.allclose(got["grad"], 2 * image.grad[rank * 4 : (rank + 1) * 4], atol=1e-6)


def test_train_ovt_runs_under_two_processes(tmp_path):
    from test_train_ovt import write_export

    export_dir = write_export(tmp_path / "export")
    config = tmp_path / "train.yaml"
    config.write_text(
        json.dumps(
            {
                "clip_model": "tiny-random",
                "objects_per_batch": 2,
                "views_per_object": 2,
                "hard_views": 1,
                "max_steps": 3,
                "save_every": 3,
                "log_every": 1,
                "num_workers": 0,
                "viformer_heads": 4,
                "lora_r": 4,
                "warmup_steps": 0,
                "anchor": "knn",
                "mining": "bank",
            }
        )
    )
    out = tmp_path / "run"
    _launch(
        ["-m", "mvcap_build", "train-ovt", str(export_dir), "--config", str(config), "--output", str(out)], tmp_path
    )
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # written once, by the main process
    assert (out / "checkpoints" / "step-00000003" / "ovt_config.json").is_file()
    state = torch.load(out / "checkpoints" / "step-00000003" / "trainer_state.pt", weights_only=True)
    # The start's pass filled the bank with every view, each process embedding its blocks of rows.
    assert int(state["miner"]["seen"].sum()) == 24
