"""`mvcap train-ovt` end to end: real Parquet shards, a tiny random CLIP, real checkpoints."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from torch_fixtures import _datasets_cache, _one_thread  # noqa: F401 - autouse fixtures

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")
datasets = pytest.importorskip("datasets")

from mvcap_build.clip.preprocess import ImageTransform  # noqa: E402
from mvcap_build.ovt.checkpoint import (  # noqa: E402
    RANDOM_INIT_NOTE,
    latest_checkpoint,
    load_ovt_checkpoint,
    save_checkpoint,
)
from mvcap_build.ovt.model import build_ovt_model  # noqa: E402
from mvcap_build.tiny_models.tiny_clip import build_tiny_clip  # noqa: E402
from mvcap_build.train.config import TrainOVTConfig  # noqa: E402
from mvcap_build.train.data import ExportData, sample_batch  # noqa: E402
from mvcap_build.train.trainer import train_ovt  # noqa: E402

COLOURS = ["red", "green", "blue", "orange", "purple", "teal"]
RGB = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (40, 60, 220),
    "orange": (250, 150, 20),
    "purple": (140, 40, 170),
    "teal": (20, 160, 160),
}
SHAPES = ["square", "circle", "triangle"]
N_OBJECTS, N_VIEWS = 6, 4


def _render(colour: str, shape: str, view: int, size: int = 64) -> bytes:
    """An RGBA 'render': a coloured shape on transparency, shifted and scaled by viewpoint."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    r, c = 12 + 3 * view, 20 + 6 * view
    box = (c - r, c - r, c + r, c + r)
    if shape == "square":
        draw.rectangle(box, fill=RGB[colour] + (255,))
    elif shape == "circle":
        draw.ellipse(box, fill=RGB[colour] + (255,))
    else:
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=RGB[colour] + (255,))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_export(
    root: Path, n_objects: int = N_OBJECTS, n_views: int = N_VIEWS, short: dict[int, int] | None = None
) -> Path:
    """Parquet shards in `mvcap export`'s layout; `short` gives some objects fewer views."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    rows = {
        k: []
        for k in (
            "image",
            "caption",
            "obj_id",
            "img_id",
            "key",
            "category",
            "source",
            "view_index",
            "azimuth_deg",
            "elevation_deg",
            "path",
        )
    }
    for obj in range(n_objects):
        colour, shape = COLOURS[obj % len(COLOURS)], SHAPES[obj % len(SHAPES)]
        for view in range((short or {}).get(obj, n_views)):
            path = f"views/demo/{shape}-{obj:03d}/{view:03d}.png"
            rows["image"].append({"bytes": _render(colour, shape, view), "path": path})
            rows["caption"].append(f"a {colour} {shape} seen from view {view}")
            rows["obj_id"].append(obj)
            rows["img_id"].append(obj * 100 + view)
            rows["key"].append(f"demo/{shape}-{obj:03d}")
            rows["category"].append(shape)
            rows["source"].append("demo")
            rows["view_index"].append(view)
            rows["azimuth_deg"].append(90.0 * view)
            rows["elevation_deg"].append(15.0)
            rows["path"].append(path)
    features = Features(
        {
            "image": ImageFeature(),
            "caption": Value("string"),
            "obj_id": Value("int64"),
            "img_id": Value("int64"),
            "key": Value("string"),
            "category": Value("string"),
            "source": Value("string"),
            "view_index": Value("int32"),
            "azimuth_deg": Value("float64"),
            "elevation_deg": Value("float64"),
            "path": Value("string"),
        }
    )
    (root / "data").mkdir(parents=True)
    half = len(rows["obj_id"]) // 2  # two shards, split mid-object: grouping must not care
    for i, (lo, hi) in enumerate([(0, half), (half, len(rows["obj_id"]))]):
        part = {k: v[lo:hi] for k, v in rows.items()}
        Dataset.from_dict(part, features=features).to_parquet(str(root / f"data/train-{i:05d}.parquet"))
    return root


def fast_config(**overrides) -> TrainOVTConfig:
    base = dict(
        clip_model="tiny-random",
        objects_per_batch=4,
        views_per_object=4,
        hard_views=2,
        lr=3e-3,
        warmup_steps=0,
        schedule="constant",
        max_steps=4,
        save_every=2,
        log_every=1,
        num_workers=0,
        viformer_heads=4,
        lora_r=4,
        lora_alpha=8,
    )
    return TrainOVTConfig(**(base | overrides))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(
        tmp_path_factory.mktemp("models") / "tiny-clip", texts=[f"a {c} {s}" for c in COLOURS for s in SHAPES]
    )


def test_loss_is_finite_and_decreases(export_dir, tmp_path):
    out = tmp_path / "run"
    final = train_ovt(fast_config(max_steps=24, save_every=100), export_dir, out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 25))
    losses = [r["loss"] for r in log]
    assert all(map(lambda x: x == x and abs(x) < 1e6, losses))
    assert {"contrastive_loss", "consistency_loss", "lr"} <= set(log[0])
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, losses
    assert final == out / "checkpoints" / "step-00000024"


def test_sampler_groups_views_by_object_across_shards(export_dir, tmp_path):
    data = ExportData.open(export_dir)
    assert data.num_objects == N_OBJECTS
    obj_ids = data.dataset.data.column("obj_id").to_pylist()
    assert all(len({obj_ids[r] for r in rows}) == 1 and len(rows) == N_VIEWS for rows in data.groups)
    rows, objs = sample_batch(data.groups, 4, 3, seed=0, index=5)
    assert [obj_ids[r] for r in rows] == objs.tolist() and len(set(objs.tolist())) == 4
    assert (rows == sample_batch(data.groups, 4, 3, seed=0, index=5)[0]).all()  # pure in step
    # An object with 2 views still fills V=4 slots (with replacement).
    short = ExportData.open(write_export(tmp_path / "short", short={0: 2}))
    rows, objs = sample_batch(short.groups, N_OBJECTS, 4, seed=0, index=0)
    assert len(rows) == 4 * N_OBJECTS and set(rows[objs == 0].tolist()) <= set(short.groups[0].tolist())


def test_only_lora_and_viformer_train(tiny_clip, export_dir):
    config = fast_config(clip_model=str(tiny_clip))
    model = build_ovt_model(config, str(tiny_clip))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("viformer.") for n in trainable)
    assert any("vision_model" in n and "q_proj.lora_A" in n for n in trainable)
    assert not any("text_model" in n for n in trainable)
    pixels = torch.randn(8, 3, 64, 64)
    ids = torch.tensor([[0, 5, 6, 1]] * 8)
    out = model(pixels, ids)
    out["image_embeds"].sum().backward()
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_with_grad
    assert all(p.grad is not None for n, p in model.named_parameters() if ".lora_B" in n)


def test_training_leaves_base_clip_unchanged(export_dir, tmp_path, monkeypatch):
    from transformers import CLIPModel

    import mvcap_build.ovt.model as model_module

    built = []  # a spy, not a stub: the real model is built and trained
    real_build = model_module.build_ovt_model
    monkeypatch.setattr(model_module, "build_ovt_model", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    train_ovt(fast_config(max_steps=3, save_every=100), export_dir, tmp_path / "run")
    trained = {k: v.cpu() for k, v in built[0].base.state_dict().items()}
    before = CLIPModel.from_pretrained(tmp_path / "run" / "base-model").state_dict()
    for name, weight in before.items():
        head, _, leaf = name.rpartition(".")
        key = f"{head}.base_layer.{leaf}"  # where peft moved a weight that LoRA wraps
        assert torch.equal(trained[key if key in trained else name], weight), name
    lora_b = [v for k, v in trained.items() if ".lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # LoRA B starts at zero: it trained


def test_checkpoint_loads_back_identically(tiny_clip, tmp_path):
    config = fast_config(clip_model=str(tiny_clip), image_size=64)
    model = build_ovt_model(config, str(tiny_clip))
    with torch.no_grad():  # make LoRA and VIFormer matter, as after training
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_clip)
    transform = ImageTransform.from_pretrained(tiny_clip, 64)
    path = save_checkpoint(
        model,
        config,
        7,
        tmp_path,
        base_model=str(tiny_clip),
        random_init=False,
        tokenizer=tokenizer,
        transform=transform,
    )
    assert latest_checkpoint(tmp_path) == path
    meta = json.loads((path / "ovt_config.json").read_text())
    assert meta["config"] == config.model_dump(mode="json") and meta["step"] == 7
    assert meta["base_model"] == str(tiny_clip) and meta["base_model_note"] is None

    loaded = load_ovt_checkpoint(path)
    images = [Image.open(io.BytesIO(_render(c, "circle", 1))) for c in COLOURS]
    pixels = torch.stack([transform(im) for im in images])
    with torch.no_grad():
        expected = model.encode_image(pixels)
        plain = build_ovt_model(config, str(tiny_clip)).eval().encode_image(pixels)
    assert torch.allclose(loaded.embed_images(images), expected, atol=1e-6)
    assert not torch.allclose(plain, expected, atol=1e-3)  # the trained weights did load
    tokens = tokenizer(["a red circle"], return_tensors="pt")
    with torch.no_grad():
        text = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(loaded.embed_texts(["a red circle"]), text, atol=1e-6)


@pytest.mark.parametrize("mining", ["bank", "full_pass", "batch"])
def test_rerun_resumes_and_matches_an_uninterrupted_run(export_dir, tmp_path, mining):
    """Two of each object's four views per batch, so the bank's other views shape the mining:
    a resumed run matches only if the bank was saved and restored with the checkpoint."""
    from safetensors.torch import load_file

    def fast_config(**overrides):  # noqa: F811 - this test's variant
        return globals()["fast_config"](
            views_per_object=2, hard_views=1, mining=mining, anchor="knn", margin=0.3, **overrides
        )

    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    first = train_ovt(fast_config(max_steps=4), export_dir, resumed)
    assert first.name == "step-00000004"
    (resumed / "checkpoints" / "step-00000099.tmp").mkdir()  # leftover of a save killed midway
    final = train_ovt(fast_config(max_steps=6), export_dir, resumed)
    assert final.name == "step-00000006"
    steps = [json.loads(line)["step"] for line in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued at 5, not from 0
    assert torch.load(final / "trainer_state.pt", weights_only=True)["step"] == 6

    reference = train_ovt(fast_config(max_steps=6), export_dir, straight)
    for name in ("viformer.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(final / name), load_file(reference / name)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name
    meta = json.loads((final / "ovt_config.json").read_text())
    assert meta["base_model"] == "base-model" and meta["base_model_note"] == RANDOM_INIT_NOTE
    # Same max_steps again: nothing to do, the same checkpoint comes back.
    assert train_ovt(fast_config(max_steps=6), export_dir, resumed) == final


def test_resume_refuses_another_architecture(export_dir, tmp_path):
    from mvcap_build.errors import UserError

    train_ovt(fast_config(max_steps=2), export_dir, tmp_path)
    with pytest.raises(UserError, match=r"lora_r: 4 -> 2.*--redo stale"):
        train_ovt(fast_config(max_steps=4, lora_r=2), export_dir, tmp_path)


# --- provenance: a resume continues the same run, or stops and says why ---------------------------

RUN_YAML = (
    "clip_model: tiny-random\nobjects_per_batch: 3\nviews_per_object: 2\nhard_views: 1\nnum_workers: 0\n"
    "viformer_heads: 4\nlora_r: 4\nlora_alpha: 8\nsave_every: 2\nlog_every: 1\nlr: 0.003\n"
)


def _snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run folder, by path: what a refused resume must leave as it was."""
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained_run(export_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A 2-step run through the CLI, and its YAML; copy it before resuming."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("trained")
    (folder / "ovt.yaml").write_text(RUN_YAML)
    result = CliRunner().invoke(
        _cli(),
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(folder / "run"),
            "--config",
            str(folder / "ovt.yaml"),
            "--max-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "run", folder / "ovt.yaml"


def _copy_run(trained_run, tmp_path) -> tuple[Path, Path]:
    import shutil

    run, config = trained_run
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", config


@pytest.mark.parametrize(
    "change, named",
    [
        (["--lr", "0.001"], "lr: 0.003 -> 0.001"),
        (["--hard-views", "2"], "hard_views: 1 -> 2"),
        ("lora_r: 2\n", "lora_r: 4 -> 2"),
        ("clip-model", 'clip_model: "tiny-random" -> '),
        ("export", "another export (objects: 6 -> 5, views: 24 -> 20)"),
    ],
)
def test_resume_with_other_settings_or_data_stops_in_one_line(
    trained_run, export_dir, tiny_clip, tmp_path, change, named
):
    from typer.testing import CliRunner

    run, config = _copy_run(trained_run, tmp_path)
    data, args = export_dir, ["--max-steps", "4"]
    if change == "export":
        data = write_export(tmp_path / "other-export", n_objects=5)
    elif change == "clip-model":
        args += ["--clip-model", str(tiny_clip)]
    elif isinstance(change, str):  # a line of YAML
        config = tmp_path / "ovt.yaml"
        config.write_text(RUN_YAML + change)
    else:
        args += change
    before = _snapshot(run)
    result = CliRunner().invoke(_cli(), ["train-ovt", str(data), "-o", str(run), "--config", str(config), *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], result.output
    assert "cannot resume" in errors[0] and "new --output folder" in errors[0] and "--redo stale" in errors[0]
    assert "Traceback" not in result.output and "embedding bank" not in result.output
    assert _snapshot(run) == before  # config.json, log and checkpoints as they were: nothing ran


def test_a_changed_base_model_revision_stops_the_resume(export_dir, tiny_clip, tmp_path):
    import shutil

    from mvcap_build.errors import UserError

    base = tmp_path / "clip"
    shutil.copytree(tiny_clip, base)
    train_ovt(fast_config(clip_model=str(base), max_steps=2), export_dir, tmp_path / "run")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(
        json.dumps({**config, "initializer_factor": 0.5})
    )  # the folder changed, not its name
    before = _snapshot(tmp_path / "run")
    with pytest.raises(UserError, match=r"base_model\.revision: \"local:[0-9a-f]+\" -> \"local:[0-9a-f]+\""):
        train_ovt(fast_config(clip_model=str(base), max_steps=4), export_dir, tmp_path / "run")
    assert _snapshot(tmp_path / "run") == before
    # Asked to start over, it does: the old run moves aside, the new one trains from step 0.
    final = train_ovt(fast_config(clip_model=str(base), max_steps=2), export_dir, tmp_path / "run", redo=True)
    (previous,) = (tmp_path / "run" / "previous").iterdir()
    assert (previous / "checkpoints" / "step-00000002" / "ovt_config.json").is_file()
    meta = json.loads((final / "ovt_config.json").read_text())
    assert (
        meta["provenance"]["base_model_revision"]
        != json.loads((previous / "checkpoints" / "step-00000002" / "ovt_config.json").read_text())["provenance"][
            "base_model_revision"
        ]
    )


def test_redo_stale_starts_the_run_over_and_keeps_the_old_one(trained_run, export_dir, tmp_path):
    from typer.testing import CliRunner

    run, config = _copy_run(trained_run, tmp_path)
    old = _snapshot(run)
    result = CliRunner().invoke(
        _cli(),
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(run),
            "--config",
            str(config),
            "--max-steps",
            "2",
            "--lr",
            "0.001",
            "--redo",
            "stale",
        ],
    )
    assert result.exit_code == 0, result.output
    (previous,) = (run / "previous").iterdir()
    assert _snapshot(previous) == old  # the old run, whole, beside the new one
    saved = json.loads((run / "config.json").read_text())
    assert saved["lr"] == 0.001 and [s["from_step"] for s in saved["segments"]] == [0]
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # trained from step 0 again
    meta = json.loads((run / "checkpoints" / "step-00000002" / "ovt_config.json").read_text())
    assert meta["config"]["lr"] == 0.001 and meta["fingerprint"]["fields"]["settings.lr"] == 0.001
    # --redo stale with the same settings resumes: nothing is moved
    result = CliRunner().invoke(
        _cli(),
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(run),
            "--config",
            str(config),
            "--max-steps",
            "3",
            "--lr",
            "0.001",
            "--redo",
            "stale",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((run / "previous").iterdir())) == 1 and (run / "checkpoints" / "step-00000002").is_dir()


def test_resume_may_change_only_what_does_not_change_the_weights(trained_run, export_dir, tmp_path):
    """max_steps, save_every, log_every and num_workers may change; config.json and every
    checkpoint say from which step each value held, and what the run was trained on."""
    from typer.testing import CliRunner

    run, config = _copy_run(trained_run, tmp_path)
    result = CliRunner().invoke(
        _cli(),
        [
            "train-ovt",
            str(export_dir),
            "-o",
            str(run),
            "--config",
            str(config),
            "--max-steps",
            "4",
            "--save-every",
            "1",
            "--num-workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert saved["segments"] == [
        {"from_step": 0, "max_steps": 2, "save_every": 2, "log_every": 1, "num_workers": 0},
        {"from_step": 2, "max_steps": 4, "save_every": 1, "log_every": 1, "num_workers": 1},
    ]
    meta = json.loads((run / "checkpoints" / "step-00000004" / "ovt_config.json").read_text())
    assert meta["segments"] == saved["segments"] and meta["provenance"] == saved["provenance"]
    keys = (run / "checkpoints" / "step-00000004" / "training_keys.txt").read_text().splitlines()
    assert keys == sorted({f"demo/{SHAPES[o % 3]}-{o:03d}" for o in range(N_OBJECTS)})
    provenance = meta["provenance"]
    assert provenance["training_keys"] == {
        "file": "training_keys.txt",
        "column": "key",
        "count": N_OBJECTS,
        "digest": provenance["training_keys"]["digest"],
    }
    assert provenance["export"]["objects"] == N_OBJECTS and provenance["export"]["views"] == N_OBJECTS * N_VIEWS
    assert provenance["base_model_revision"].startswith("local:") and provenance["world_size"] == 1
    assert "settings.lr" in meta["fingerprint"]["fields"] and "settings.max_steps" not in meta["fingerprint"]["fields"]
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_export_without_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "export" / "data").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no Parquet shards.*mvcap export"):
        train_ovt(fast_config(), tmp_path / "export", tmp_path / "out")


def _cli():
    import typer

    from mvcap_build.cli.train_ovt import train_ovt as command

    app = typer.Typer()
    app.command("train-ovt")(command)
    app.command("other")(lambda: None)  # two commands, so typer keeps the subcommand name
    return app


def test_cli_trains_from_yaml_and_reports_errors(export_dir, tmp_path):
    from typer.testing import CliRunner

    runner = CliRunner()
    config = tmp_path / "ovt.yaml"
    config.write_text(
        "clip_model: tiny-random\nobjects_per_batch: 3\nviews_per_object: 2\n"
        "hard_views: 1\nnum_workers: 0\nviformer_heads: 4\nsave_every: 100\n"
    )
    result = runner.invoke(
        _cli(), ["train-ovt", str(export_dir), "-o", str(tmp_path / "run"), "--config", str(config), "--max-steps", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "checkpoint at" in result.output and "step-00000002" in result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["max_steps"] == 2 and saved["objects_per_batch"] == 3

    (tmp_path / "empty").mkdir()
    result = runner.invoke(_cli(), ["train-ovt", str(tmp_path / "empty"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "needs an export" in result.output
    result = runner.invoke(
        _cli(), ["train-ovt", str(export_dir), "-o", str(tmp_path / "y"), "--views", "2", "--hard-views", "3"]
    )
    assert result.exit_code == 2 and "hard_views" in result.output


def test_cli_module_does_not_import_torch():
    code = (
        "import sys, mvcap_build.cli.train_ovt, mvcap_build.train.config; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_truncated_shard_is_one_line_not_a_traceback(export_dir, tmp_path):
    import shutil

    from typer.testing import CliRunner

    broken = tmp_path / "export"
    shutil.copytree(export_dir, broken)
    shard = sorted((broken / "data").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = CliRunner().invoke(
        _cli(),
        ["train-ovt", str(broken), "-o", str(tmp_path / "run"), "--max-steps", "1", "--clip-model", "tiny-random"],
    )
    assert result.exit_code == 2, result.output
    assert "not a readable Parquet file" in result.output and shard.name in result.output
    assert "Traceback" not in result.output


def test_piped_training_log_is_one_timestamped_line_per_record(export_dir, tmp_path):
    """In a pipe at 80 columns: no wrapped lines, the progress lines' [HH:MM:SS] on every log line,
    and none of the libraries' progress bars ("Generating train split") in between."""
    import os
    import re

    config = tmp_path / "ovt.yaml"
    config.write_text(
        "clip_model: tiny-random\nobjects_per_batch: 3\nviews_per_object: 2\nhard_views: 1\n"
        "num_workers: 0\nviformer_heads: 4\nsave_every: 100\nlog_every: 1\n"
    )
    run = tmp_path / "a-run-folder-with-a-long-name-so-that-its-path-alone-passes-eighty-columns"
    # as a user's shell has it: an in-process CLI test may have set the libraries' *_DISABLE_PROGRESS_BARS here
    env = {k: v for k, v in os.environ.items() if "DISABLE_PROGRESS_BARS" not in k} | {"COLUMNS": "80"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mvcap_build",
            "train-ovt",
            str(export_dir),
            "-o",
            str(run),
            "--config",
            str(config),
            "--max-steps",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    log = result.stderr.splitlines()
    stamp = re.compile(r"^\[\d\d:\d\d:\d\d\] train_ovt: ")
    assert log and all(stamp.match(line) for line in log), result.stderr
    assert any(f"RANDOMLY INITIALISED tiny CLIP in {run / 'base-model'}" in line for line in log)
    assert any("step 2/2 lr=" in line and "contrastive_loss=" in line and "s_per_step=" in line for line in log)
    assert max(len(line) for line in log) > 80  # long lines stay whole
    assert result.stdout.splitlines() == [f"train_ovt: checkpoint at {run / 'checkpoints' / 'step-00000002'}"]
