"""`mvcap eval` on a tiny random CLIP: numbers checked against hand computations with the
transformers CLIPModel forward, class-name files, per-viewpoint figures, and an OVT checkpoint
beside its base."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from torch_fixtures import _datasets_cache, _one_thread  # noqa: F401 - autouse fixtures

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("matplotlib")
datasets = pytest.importorskip("datasets")

from typer.testing import CliRunner  # noqa: E402

from mvcap_build.clip.classnames import read_classnames  # noqa: E402
from mvcap_build.clip.preprocess import ImageTransform  # noqa: E402
from mvcap_build.clip.templates import IMAGENET_TEMPLATES  # noqa: E402
from mvcap_build.errors import ConfigError  # noqa: E402
from mvcap_build.eval import metrics  # noqa: E402
from mvcap_build.tiny_models.tiny_clip import build_tiny_clip  # noqa: E402

RGB = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "orange": (250, 150, 20)}
SHAPES = ["square", "circle", "triangle"]
# Class folders (sorted: apple, boat, cat) and the names they stand for.
FOLDERS = {"n003_cat": "triangle", "n001_apple": "square", "n002_boat": "circle"}
EXTRA_LABELS = ["chair", "mug", "car", "lamp"]  # more candidates, so top-5 is not trivially 100
# View (azimuth, elevation) of the synthetic export: every azimuth bin of 45 deg, elevations -10..90.
VIEWS = [(0, 5), (45, 20), (90, 35), (135, 50), (180, 65), (225, 80), (270, 90), (315, -10), (350, 25), (10, 0)]
N_OBJECTS, TEST_OBJECTS = 8, (5, 6, 7)


def shape_image(
    colour: str, shape: str, shift: int = 0, size: tuple[int, int] = (64, 64), mode: str = "RGB"
) -> Image.Image:
    image = Image.new(mode, size, (255, 255, 255) if mode == "RGB" else (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    r, c = 12 + shift, 24 + 2 * shift
    fill = RGB[colour] + ((255,) if mode == "RGBA" else ())
    if shape == "square":
        draw.rectangle((c - r, c - r, c + r, c + r), fill=fill)
    elif shape == "circle":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=fill)
    else:
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=fill)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    texts = [t.format(n) for t in IMAGENET_TEMPLATES[:10] for n in [*FOLDERS.values(), *EXTRA_LABELS]]
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip", texts=texts, image_size=64)


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory) -> Path:
    """3 classes x 3 images, of several sizes and formats (RGBA included)."""
    root = tmp_path_factory.mktemp("bench") / "toy-bench"
    colours = list(RGB)
    for folder, shape in FOLDERS.items():
        (root / folder / "sub").mkdir(parents=True)
        shape_image(colours[0], shape, 0).save(root / folder / "a.png")
        shape_image(colours[1], shape, 3, size=(80, 64)).save(root / folder / "b.JPG", quality=95)
        shape_image(colours[2], shape, 6, mode="RGBA").save(
            root / folder / "sub" / "c.png"
        )  # nested, as ImageFolder finds it
    (root / "n001_apple" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("files directly under the root are not images of a class")
    return root


def write_classnames(path: Path) -> Path:
    path.write_text("".join(FOLDERS[f] + "\n" for f in sorted(FOLDERS)))
    return path


def runner_invoke(args: list[str]):
    from mvcap_build.cli import app

    return CliRunner().invoke(app, ["eval", *args])


# --- ImageFolder ---------------------------------------------------------------------------------


def hand_zero_shot(model_dir: Path, images: list[Image.Image], classnames: list[str]) -> np.ndarray:
    """(images, classes) cosine logits straight from CLIPModel's forward: per class, the 80 prompts
    through the text tower, normalised, averaged, normalised; images through the vision tower."""
    from transformers import AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    transform = ImageTransform.from_pretrained(model_dir, 64)
    pixels = torch.stack([transform(im) for im in images])
    class_rows, image_embeds = [], None
    with torch.no_grad():
        for name in classnames:
            tokens = tokenizer([t.format(name) for t in IMAGENET_TEMPLATES], padding=True, return_tensors="pt")
            out = clip(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
            per_template = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
            mean = per_template.mean(dim=0)
            class_rows.append(mean / mean.norm())
            image_embeds = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    return (image_embeds @ torch.stack(class_rows).T).numpy()


def test_templates_are_clips_80():
    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)


def test_imagefolder_top1_top5_equal_a_hand_computation(tiny_clip, imagefolder, tmp_path):
    classnames = write_classnames(tmp_path / "classes.txt")
    labels = tmp_path / "labels.txt"
    label_set = [EXTRA_LABELS[0], "circle", EXTRA_LABELS[1], "square", *EXTRA_LABELS[2:], "triangle"]
    labels.write_text("\n".join(label_set) + "\n")
    out = tmp_path / "out"
    result = runner_invoke(
        [
            str(tiny_clip),
            "--imagefolder",
            str(imagefolder),
            "--classnames",
            str(classnames),
            "--label-set",
            str(labels),
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--workers",
            "2",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    [bench] = report["imagefolder"]
    assert bench["class_folders"] == 3 and bench["images"] == 9 and bench["label_set_size"] == 7
    assert bench["unreadable"] == []
    got = bench["results"]["tiny-clip"]

    # By hand: the images in ImageFolder order (sorted folders, sorted paths), targets by name.
    paths = [
        p for f in sorted(FOLDERS) for p in sorted((imagefolder / f).rglob("*")) if p.suffix.lower() in (".png", ".jpg")
    ]
    images = [Image.open(p) for p in paths]
    targets = np.array([label_set.index(FOLDERS[p.relative_to(imagefolder).parts[0]]) for p in paths])
    logits = hand_zero_shot(tiny_clip, images, label_set)
    ranked = np.argsort(-logits, axis=1)
    top1 = ranked[:, 0] == targets
    top5 = (ranked[:, :5] == targets[:, None]).any(axis=1)
    assert 0 < top5.sum() < 9  # the check means something: top-5 of 7 classes misses some

    assert got["n"] == 9
    assert got["top1_correct"] == int(top1.sum()) and got["top5_correct"] == int(top5.sum())
    assert got["top1"] == 100.0 * top1.sum() / 9 and got["top5"] == 100.0 * top5.sum() / 9
    for _i, folder in enumerate(sorted(FOLDERS)):
        in_class = np.array([p.relative_to(imagefolder).parts[0] == folder for p in paths])
        assert got["per_class"][folder]["top1_correct"] == int(top1[in_class].sum())
        assert got["per_class"][folder]["name"] == FOLDERS[folder]
    md = (out / "results.md").read_text()
    assert "| toy-bench top-1 (9 images, 7 classes) |" in md and "tiny-clip" in md
    assert f"{got['top1']:.2f}" in result.output  # the table is printed


def test_unreadable_image_is_skipped_and_reported(tiny_clip, imagefolder, tmp_path):
    import shutil

    root = tmp_path / "bench"
    shutil.copytree(imagefolder, root)
    (root / "n002_boat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    result = runner_invoke(
        [
            str(tiny_clip),
            "--imagefolder",
            str(root),
            "--classnames",
            str(write_classnames(tmp_path / "c.txt")),
            "--templates",
            "1",
            "--device",
            "cpu",
            "--workers",
            "0",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    [bench] = json.loads((out / "results.json").read_text())["imagefolder"]
    assert bench["images"] == 10
    assert [u["path"] for u in bench["unreadable"]] == ["n002_boat/broken.jpg"]
    assert bench["unreadable"][0]["error"] == "OSError: Truncated File Read"
    assert bench["results"]["tiny-clip"]["n"] == 9 and bench["results"]["tiny-clip"]["per_class"]["n002_boat"]["n"] == 3
    assert "1 unreadable images skipped" in result.output
    assert "1 unreadable images skipped" in (out / "results.md").read_text()


# --- class-name files ----------------------------------------------------------------------------

EXPECTED = {"n001_apple": "square", "n002_boat": "circle", "n003_cat": "triangle, pointed"}


@pytest.mark.parametrize(
    "name, text",
    [
        ("names.txt", "square\n\ncircle\ntriangle, pointed\n"),
        ("names.json", json.dumps(["square", "circle", "triangle, pointed"])),
        (
            "names.json",
            json.dumps(
                {"n003_cat": "triangle, pointed", "n001_apple": "square", "n002_boat": "circle", "n999_extra": "x"}
            ),
        ),
        (
            "imagenet_class_index.json",
            json.dumps(
                {"0": ["n001_apple", "square"], "1": ["n002_boat", "circle"], "2": ["n003_cat", "triangle, pointed"]}
            ),
        ),
        ("names.csv", 'folder,name\nn002_boat,circle\nn001_apple,square\nn003_cat,"triangle, pointed"\n'),
        ("names.csv", "n001_apple,square\nn002_boat,circle\nn003_cat,triangle, pointed\n"),  # unquoted comma
    ],
)
def test_classname_file_forms(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_classnames(path, sorted(EXPECTED)) == EXPECTED


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("names.txt", "square\ncircle\n", "has 2 class names but the benchmark has 3 class folders"),
        ("names.json", json.dumps(["a", "b", "c", "d"]), "has 4 class names but the benchmark has 3"),
        (
            "names.json",
            json.dumps({"n001_apple": "square"}),
            "names no class for 2 of the 3 class folders: n002_boat, n003_cat",
        ),
        ("names.csv", "n001_apple\n", "row 1 is not `folder,name`"),
        ("names.json", "{not json", "not valid JSON"),
    ],
)
def test_bad_classname_files_are_clear_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_classnames(path, sorted(EXPECTED))


def test_imagefolder_errors(imagefolder, tmp_path):
    from mvcap_build.clip.imagefolder import ImageFolderBenchmark

    names = write_classnames(tmp_path / "c.txt")
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageFolderBenchmark.open(tmp_path / "missing", names)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "one.txt").write_text("a\n")
    with pytest.raises(ConfigError, match="has no images"):
        ImageFolderBenchmark.open(tmp_path / "empty", tmp_path / "one.txt")
    (tmp_path / "labels.txt").write_text("square\ncircle\n")
    with pytest.raises(ConfigError, match="lacks 1 class names.*triangle"):
        ImageFolderBenchmark.open(imagefolder, names, tmp_path / "labels.txt")


# --- export held-out split -----------------------------------------------------------------------


def write_export(root: Path) -> Path:
    """An export in `mvcap export`'s layout and schema: train and test shards, export.json."""
    from datasets import Dataset

    from mvcap_build.dataset.export_schema import IMAGE_COLUMN, ExportRow, features

    colours = list(RGB)
    rows = {"train": [], "test": []}
    for obj in range(N_OBJECTS):
        shape, colour = SHAPES[obj % 3], colours[obj % 4]
        split = "test" if obj in TEST_OBJECTS else "train"
        for view, (azimuth, elevation) in enumerate(VIEWS):
            path = f"views/demo/{shape}-{obj:03d}/{view:03d}.png"
            row = ExportRow(
                path=path,
                caption=f"a {colour} {shape} from view {view}",
                obj_id=obj,
                img_id=obj * 100 + view,
                key=f"demo/{shape}-{obj:03d}",
                split=split,
                category=shape,
                source="demo",
                view_index=view,
                azimuth_deg=float(azimuth),
                elevation_deg=float(elevation),
                distance=2.0,
                fov_deg=40.0,
                c2w=np.eye(4).tolist(),
                caption_backend="template",
                caption_model="none",
            ).as_dict()
            row[IMAGE_COLUMN] = {"bytes": png(shape_image(colour, shape, view % 5, mode="RGBA")), "path": path}
            rows[split].append(row)
    (root / "data").mkdir(parents=True)
    for split, part in rows.items():
        columns = {name: [r[name] for r in part] for name in part[0]}
        Dataset.from_dict(columns, features=features()).to_parquet(str(root / f"data/{split}-00000-of-00001.parquet"))
    (root / "export.json").write_text(
        json.dumps({"categories": {s: 1 for s in SHAPES}, "image_sets": {"data": {"images": "original files"}}})
    )
    return root


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "export")


def test_export_split_per_view_bins_and_invariance(tiny_clip, export_dir, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    result = runner_invoke(
        [
            str(tiny_clip),
            "--export",
            str(export_dir),
            "--device",
            "cpu",
            "--batch-size",
            "64",
            "--azimuth-bin",
            "45",
            "--elevation-bin",
            "30",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    export = report["export"]
    assert export["split"] == "test" and export["views"] == 3 * len(VIEWS) and export["objects"] == 3
    assert export["classes"] == sorted(SHAPES)
    got = export["results"]["tiny-clip"]
    views = got["views"]
    n = len(views)
    assert got["n"] == n == 3 * len(VIEWS) and got["objects"] == 3

    # Every view in exactly one bin of each kind, the one its angles fall in; counts sum to n.
    for kind, width in (("azimuth", 45.0), ("elevation", 30.0)):
        bins = got[f"{kind}_bins"]
        assert sum(b["n"] for b in bins) == n
        for view in views:
            b = bins[view[f"{kind}_bin"]]
            angle = view[f"{kind}_deg"]
            if kind == "azimuth":
                assert (angle - b["lo"]) % 360 < width
            else:
                assert b["lo"] <= angle < b["hi"] or angle == b["hi"] == 90
        for k, b in enumerate(bins):  # per-bin accuracy recomputed from the per-view predictions
            members = [v for v in views if v[f"{kind}_bin"] == k]
            assert b["n"] == len(members)
            assert b["top1_correct"] == sum(v["top1"] for v in members)
            assert b["top1"] == (100.0 * b["top1_correct"] / len(members) if members else None)
    assert len(got["azimuth_bins"]) == 8 and len(got["elevation_bins"]) == 6
    assert got["top1_correct"] == sum(v["top1"] for v in views)
    assert all(v["prediction"] in SHAPES and v["top1"] == (v["prediction"] == v["category"]) for v in views)

    # Canonical: elevation 0..30 and azimuth within 45 of the front; extreme: the rest.
    canonical = [
        0 <= v["elevation_deg"] <= 30 and min(v["azimuth_deg"] % 360, 360 - v["azimuth_deg"] % 360) <= 45 for v in views
    ]
    assert [v["canonical"] for v in views] == canonical
    assert got["canonical"]["n"] == sum(canonical) == 3 * 4 and got["canonical"]["n"] + got["extreme"]["n"] == n

    assert -1.0 <= got["invariance"]["mean_cosine_to_centre"] <= 1.0 and got["invariance"]["objects"] == 3

    # Same-object retrieval by hand on embeddings from CLIPModel's forward, rows in shard order.
    from transformers import CLIPModel

    table = pq.read_table(export_dir / "data" / "test-00000-of-00001.parquet", columns=["image", "key"])
    images = [Image.open(io.BytesIO(cell["bytes"])) for cell in table.column("image").to_pylist()]
    keys = table.column("key").to_pylist()
    transform = ImageTransform.from_pretrained(tiny_clip, 64)
    with torch.no_grad():
        clip = CLIPModel.from_pretrained(tiny_clip).eval()
        embeds = clip.get_image_features(pixel_values=torch.stack([transform(im) for im in images])).pooler_output
    embeds = (embeds / embeds.norm(dim=-1, keepdim=True)).numpy()
    sims = embeds @ embeds.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    hits = [keys[j] == keys[i] for i, j in enumerate(nearest)]
    assert [v["nearest"]["key"] for v in views] == [keys[j] for j in nearest]
    assert got["retrieval"]["queries"] == n
    assert got["retrieval"]["recall_at_1"] == pytest.approx(100.0 * sum(hits) / n, abs=1e-9)
    assert 0 <= got["retrieval"]["map"] <= 100

    md = (out / "results.md").read_text()
    assert "export:test top-1 (30 views, 3 classes)" in md and "### Top-1 by azimuth" in md
    for name in ("accuracy_by_azimuth.png", "accuracy_by_elevation.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100


def test_retrieval_and_invariance_on_known_embeddings():
    e = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]]), dim=-1
    )
    ids = np.array([0, 0, 1, 1, 2])
    got = metrics.same_object_retrieval(e, ids)
    assert got["queries"] == 4 and got["recall_at_1"] == 100.0 and got["map"] == 100.0
    assert got["nearest"].tolist()[:4] == [1, 0, 3, 2]
    ids = np.array([0, 1, 0, 1, 2])  # now each view's nearest is the other object's
    got = metrics.same_object_retrieval(e, ids)
    assert got["recall_at_1"] == 0.0
    # Ranked others of view 0: 1, 4, 3, 2 (its object's) -> AP 1/4; of view 1: 0, 4, 3 (its), 2 -> 1/3;
    # views 2 and 3 mirror them.
    assert got["map"] == pytest.approx(100.0 * np.mean([1 / 4, 1 / 3, 1 / 4, 1 / 3]))
    _, groups = metrics.group_rows(["a", "a", "b", "b", "c"])
    inv = metrics.mean_cosine_to_centre(e, groups)
    assert inv["objects"] == 2 and 0.99 < inv["mean_cosine_to_centre"] <= 1.0


def test_viewpoint_bins_at_their_edges():
    assert metrics.azimuth_bin_index(np.array([-15.0, 14.99, 15.0, 345.0, 359.0, 720.0]), 30).tolist() == [
        0,
        0,
        1,
        0,
        0,
        0,
    ]
    assert metrics.elevation_bin_index(np.array([-90.0, -75.0, 0.0, 89.0, 90.0]), 15).tolist() == [0, 1, 6, 11, 11]
    assert len(metrics.elevation_bins(40)) == 5 and metrics.elevation_bins(40)[-1]["hi"] == 90.0
    mask = metrics.canonical_mask(np.array([0, 45, 46, 315, 314, 0]), np.array([0, 30, 10, 10, 10, 31]), (0, 30), 45)
    assert mask.tolist() == [True, True, False, True, False, False]


def test_export_without_held_out_split_is_a_clear_error(export_dir, tmp_path):
    import shutil

    from mvcap_build.eval.export_split import ExportSplit

    only_train = tmp_path / "export"
    shutil.copytree(export_dir, only_train)
    (only_train / "data" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(ConfigError, match="no held-out split.*splits:"):
        ExportSplit.open(only_train)
    with pytest.raises(ConfigError, match="no split 'validation'"):
        ExportSplit.open(export_dir, "validation")
    assert ExportSplit.open(export_dir, "train").split == "train"


# --- an OVT checkpoint beside its base -----------------------------------------------------------


def test_ovt_checkpoint_and_its_base_side_by_side(export_dir, imagefolder, tmp_path):
    from mvcap_build.train.config import TrainOVTConfig
    from mvcap_build.train.trainer import train_ovt

    config = TrainOVTConfig(
        clip_model="tiny-random",
        objects_per_batch=4,
        views_per_object=2,
        hard_views=1,
        lr=3e-3,
        warmup_steps=0,
        schedule="constant",
        max_steps=2,
        save_every=2,
        log_every=1,
        num_workers=0,
        viformer_heads=4,
        lora_r=4,
        lora_alpha=8,
    )
    run = tmp_path / "run"
    train_ovt(config, export_dir, run)
    out = tmp_path / "out"
    result = runner_invoke(
        [
            str(run),
            "--with-base",
            "--export",
            str(export_dir),
            "--imagefolder",
            str(imagefolder),
            "--classnames",
            str(write_classnames(tmp_path / "c.txt")),
            "--templates",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert [(m["name"], m["kind"]) for m in report["models"]] == [("run@2", "ovt"), ("run/base-model", "clip")]
    assert report["models"][0]["step"] == 2 and "RANDOM INIT" in report["models"][0]["base_model_note"]
    header = (out / "results.md").read_text().splitlines()[4]
    assert header == "| metric | run@2 | run/base-model |"
    assert set(report["export"]["results"]) == set(report["imagefolder"][0]["results"]) == {"run@2", "run/base-model"}
    for name in ("accuracy_by_azimuth.png", "accuracy_by_elevation.png"):
        with Image.open(out / name) as image:
            image.load()
            assert image.width > image.height  # two polar charts side by side


@pytest.fixture(scope="module")
def ovt_run(export_dir, tmp_path_factory) -> Path:
    """A 2-step OVT training run on the export: RUN/checkpoints/step-00000002."""
    from mvcap_build.train.config import TrainOVTConfig
    from mvcap_build.train.trainer import train_ovt

    config = TrainOVTConfig(
        clip_model="tiny-random",
        objects_per_batch=4,
        views_per_object=2,
        hard_views=1,
        lr=3e-3,
        warmup_steps=0,
        schedule="constant",
        max_steps=2,
        save_every=2,
        log_every=1,
        num_workers=0,
        viformer_heads=4,
        lora_r=4,
        lora_alpha=8,
    )
    run = tmp_path_factory.mktemp("runs") / "run"
    train_ovt(config, export_dir, run)
    return run


def test_eval_refuses_a_split_the_checkpoint_was_trained_on(ovt_run, export_dir, tmp_path):
    """ovt_run trained on the export's train split (objects 0-4): scoring it there is refused in one
    line, or with --allow-overlap done under a warning kept in the report; the test split passes."""
    common = ["--export", str(export_dir), "--templates", "1", "--device", "cpu", "--quiet"]
    result = runner_invoke([str(ovt_run), *common, "--split", "train", "-o", str(tmp_path / "refused")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was trained on 5 of the 5 objects of export:train (e.g. demo/circle-001)" in errors[0]
    assert "--allow-overlap" in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "allowed"
    result = runner_invoke([str(ovt_run), *common, "--split", "train", "--allow-overlap", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "WARNING: run@2" in result.output and "NOT held-out" in result.output
    report = json.loads((out / "results.json").read_text())
    assert report["models"][0]["trained_on_split_objects"] == 5
    assert any("NOT held-out" in note for note in report["export"]["notes"])
    assert "NOT held-out" in (out / "results.md").read_text()

    out = tmp_path / "held-out"
    result = runner_invoke([str(ovt_run), *common, "-o", str(out)])  # the test split: objects 5-7, never trained on
    assert result.exit_code == 0, result.output
    assert (
        "WARNING" not in result.output
        and "trained_on_split_objects" not in json.loads((out / "results.json").read_text())["models"][0]
    )


def test_polar_plots_draw_empty_bins_unlike_zero_percent_bins():
    """A bin with no views is a grey hatched wedge named in the legend; a bin at 0 % is an empty bar."""
    from mvcap_build.eval.report import polar_figure

    lows = [-45.0, 45.0, 135.0, 225.0]
    bins = [
        {"lo": lo, "hi": lo + 90, "centre": lo + 45, "n": n, "top1": top1}
        for lo, (n, top1) in zip(lows, [(3, 50.0), (0, None), (2, 0.0), (0, None)])
    ]
    results = {
        "models": [{"name": "m"}],
        "export": {
            "export_dir": "/x/export",
            "split": "test",
            "results": {"m": {"top1": 20.0, "n": 5, "azimuth_bins": bins}},
        },
    }
    figure = polar_figure(results, "azimuth")
    ax = figure.axes[0]

    def at(centre: float) -> list:
        return [
            p
            for p in ax.patches
            if abs(p.get_x() + p.get_width() / 2 - math.radians(centre)) < 1e-6 and p.get_height() > 0
        ]

    for empty in (90.0, 270.0):
        (wedge,) = at(empty)
        red, green, blue, _ = wedge.get_facecolor()
        assert wedge.get_hatch() and wedge.get_height() == 100 and red == green == blue  # grey, hatched, full height
    assert at(180.0) == []  # 0 %: nothing drawn above the centre, and nothing hatched
    (half,) = at(0.0)
    assert half.get_height() == 50.0 and not half.get_hatch()
    legend = ax.get_legend() or figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["no views"]


def test_eval_keeps_the_libraries_progress_bars_and_warnings_out(ovt_run, export_dir, tmp_path):
    """No "Loading weights" bars, no FutureWarning from transformers; our own progress lines stay."""
    import os

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if "DISABLE_PROGRESS_BARS" not in k}  # as a user's shell has it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mvcap_build",
            "eval",
            str(ovt_run),
            "--with-base",
            "--export",
            str(export_dir),
            "--templates",
            "1",
            "--device",
            "cpu",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert "run@2 on export:test finished: 30 done, 0 failed of 30" in result.stderr
    assert (out / "results.json").is_file()


def test_eval_writes_beside_what_it_evaluates_not_in_the_current_folder(
    ovt_run, export_dir, tiny_clip, imagefolder, tmp_path, monkeypatch
):
    import shutil

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root = tmp_path / "root"  # a dataset root: the export inside it
    shutil.copytree(export_dir, root / "export")
    (root / "objects").mkdir()
    common = ["--templates", "1", "--device", "cpu", "--quiet"]
    result = runner_invoke([str(tiny_clip), "--export", str(root), *common])
    assert result.exit_code == 0, result.output
    (written,) = (root / "eval").glob("*/results.json")
    assert f"wrote {written}" in result.output

    result = runner_invoke([str(ovt_run / "checkpoints" / "step-00000002"), "--export", str(root), *common])
    assert result.exit_code == 0, result.output
    assert len(list((ovt_run / "eval").glob("*/results.json"))) == 1  # with the run, also for one of its checkpoints

    classnames = str(write_classnames(tmp_path / "c.txt"))
    result = runner_invoke([str(tiny_clip), "--imagefolder", str(imagefolder), "--classnames", classnames, *common])
    assert result.exit_code == 2 and "--out" in result.output  # a plain CLIP on an ImageFolder: nothing to write beside
    assert list(cwd.iterdir()) == []
    assert "ROOT/eval" in _plain_help() and "RUN/eval" in _plain_help()


def _plain_help() -> str:
    from mvcap_build.cli import app

    return " ".join(CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"}).output.split())


# --- the command line ----------------------------------------------------------------------------


def test_cli_errors_are_one_line(tiny_clip, imagefolder, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("square\ncircle\n")
    result = runner_invoke(
        [str(tiny_clip), "--imagefolder", str(imagefolder), "--classnames", str(bad), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "has 2 class names but the benchmark has 3 class folders" in errors[0]
    assert len(result.output.strip().splitlines()) == 2  # the error and the MVCAP_DEBUG hint
    assert not (tmp_path / "o").exists()

    result = runner_invoke([str(tiny_clip)])
    assert result.exit_code == 2 and "nothing to evaluate on" in result.output
    good = write_classnames(tmp_path / "c.txt")
    for missing in (str(tmp_path / "no-such-model"), "./no/such/model"):
        result = runner_invoke([missing, "--imagefolder", str(imagefolder), "--classnames", str(good)])
        assert result.exit_code == 2 and "model not found" in result.output
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    result = runner_invoke([str(tmp_path / "run"), "--imagefolder", str(imagefolder), "--classnames", str(good)])
    assert result.exit_code == 2 and "no committed checkpoint yet" in result.output
    result = runner_invoke([str(tiny_clip), "--export", str(tmp_path), "--azimuth-bin", "7"])
    assert result.exit_code == 2 and "azimuth_bin_deg: Value error, must divide 360 (got 7)" in result.output


def test_cli_help():
    result = runner_invoke(["--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    for option in (
        "--imagefolder",
        "--classnames",
        "--label-set",
        "--export",
        "--with-base",
        "--templates",
        "--canonical-elevation",
    ):
        assert option in result.output
    from mvcap_build.cli import app

    assert "eval" in CliRunner().invoke(app, ["--help"]).output


def test_cli_module_does_not_import_heavy_modules():
    code = (
        "import sys, mvcap_build.cli, mvcap_build.cli.eval, mvcap_build.eval.settings, "
        "mvcap_build.eval.model_specs, mvcap_build.clip.classnames; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'datasets', "
        "'pyarrow', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_real_export_with_a_test_split(captioned_root, copy_of, tiny_clip, tmp_path):
    """`mvcap export` with splits: the held-out split is found and every view is scored."""
    import hashlib

    from conftest import export

    keys = ("demo/car-000", "demo/chair-000", "demo/mug-000")
    # split_of's point for each key; a train fraction between the lowest two puts 2 objects in test.
    points = sorted(int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big") / 2**64 for k in keys)
    train = (points[0] + points[1]) / 2
    root = copy_of(captioned_root)
    export(root, splits={"train": train, "test": 1 - train})
    out = tmp_path / "out"
    result = runner_invoke(
        [str(tiny_clip), "--export", str(root), "--templates", "1", "--device", "cpu", "--quiet", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    export_result = json.loads((out / "results.json").read_text())["export"]
    assert export_result["split"] == "test" and export_result["objects"] == 2 and export_result["views"] == 8
    assert export_result["classes"] == ["car", "chair", "mug"]  # from export.json: the train object's category too
    got = export_result["results"]["tiny-clip"]
    assert got["n"] == 8 and sum(b["n"] for b in got["elevation_bins"]) == sum(b["n"] for b in got["azimuth_bins"]) == 8
    assert got["retrieval"]["queries"] == 8 and -1 <= got["invariance"]["mean_cosine_to_centre"] <= 1
