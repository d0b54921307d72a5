"""The dataset card (README.md) that the Hub shows and `datasets.load_dataset` reads.

Its YAML header follows the Hub's dataset card metadata spec and is built with
`huggingface_hub.DatasetCardData`, the class the Hub client reads it back with: the licence (with
a name and a link when it is `other`), the language of the captions, the size bucket, the tasks,
tags that say whether the images are renders or photographs, and the `configs` that
`datasets.load_dataset` follows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mvcap_build.dataset.export_schema import column_table
from mvcap_build.export.config import LICENSE_FILE, LICENSE_NAME
from mvcap_build.export.rows import ExportRows, needs_attribution

# As the authors ask to be cited (Heathcliff-saku/Omniview_Tuning README; ECCV 2024).
OVT_CITATION = """@article{ruan2024omniview,
  title   = {Omniview-Tuning: Boosting Viewpoint Invariance of Vision-Language Pre-training Models},
  author  = {Ruan, Shouwei and Dong, Yinpeng and Liu, Hanqing and Huang, Yao and Su, Hang and Wei, Xingxing},
  journal = {arXiv preprint arXiv:2404.12139},
  year    = {2024}
}"""


TASK_CATEGORIES = ["image-to-text", "zero-shot-image-classification"]
BASE_TAGS = ["multi-view", "mvcap", "viewpoint-invariance"]

# What the images of each kind of views are (the views' producer: "render", or a capture
# source's kind). IM3D and NeRF-synthetic ("Blender") folders hold renders of 3D models, not
# photographs; MVImgNet's are video frames of real objects. A kind not listed here gets no tag.
RENDERED, PHOTOGRAPHED = "rendered", "photographed"
IMAGE_ORIGIN = {"render": RENDERED, "im3d": RENDERED, "nerf": RENDERED, "mvimgnet": PHOTOGRAPHED}
ORIGIN_TAGS = {RENDERED: ["synthetic", "3d-rendering"], PHOTOGRAPHED: ["real-world", "photos"]}

# The Hub's `size_categories` buckets, by number of rows (one row per view); past the last: n>1T.
SIZE_CATEGORIES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
)


def size_category(rows: int) -> str:
    for power, bucket in enumerate(SIZE_CATEGORIES, start=3):
        if rows < 10**power:
            return bucket
    return "n>1T"


def image_tags(view_kinds: Counter) -> list[str]:
    """Tags for what the images are, from what made the views (renders first)."""
    origins = {IMAGE_ORIGIN.get(kind) for kind in view_kinds}
    return [tag for origin in (RENDERED, PHOTOGRAPHED) if origin in origins for tag in ORIGIN_TAGS[origin]]


@dataclass(frozen=True)
class CardLicence:
    """The card's licence: a Hub licence id; `other` needs a name and a link (a file or a URL)."""

    license: str = "other"
    name: str = LICENSE_NAME  # with `other` only
    link: str = LICENSE_FILE  # with `other` only

    @property
    def writes_file(self) -> bool:
        """Whether the export writes the file the card links to (LICENSE.md)."""
        return self.license == "other" and self.link == LICENSE_FILE

    def metadata(self) -> dict[str, str]:
        if self.license != "other":
            return {"license": self.license}
        if not self.name or not self.link:
            raise ValueError("license `other` needs license_name and license_link on the card")
        return {"license": "other", "license_name": self.name, "license_link": self.link}


@dataclass(frozen=True)
class CardConfig:
    """One `datasets` config on the card: a folder of shards and what its images are."""

    folder: str
    encoding: dict


def _describe_images(encoding: dict) -> str:
    if encoding.get("images") != "training-ready":
        return "the original view files (renders: RGBA PNG)"
    quality = f", quality {encoding['quality']}" if "quality" in encoding else ""
    on_white = " (RGBA put on white)" if encoding["format"] == "jpeg" else ""
    return (
        f"re-encoded for training: shorter side {encoding['shorter_side']} px, "
        f"{encoding['format'].upper()}{quality}{on_white}"
    )


def _gate_lines(tries: Counter, failures: dict[str, Counter]) -> str:
    views = sum(tries.values())
    first = tries.get(1, 0)
    lines = [
        f"- {first} of {views} captions passed the quality gates at the first try"
        + (f"; {views - first} after retries (at most {max(tries)} tries)" if views > first else "")
    ]
    for stage, reasons in failures.items():
        if reasons:
            listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
            lines.append(f"- left out after {stage} failed: {sum(reasons.values())} objects ({listed})")
    return "\n".join(lines)


def describe_caption_producer(producer: tuple[str, str, str, str]) -> str:
    backend, model, revision, prompt = producer
    at = f" at revision `{revision}`" if revision and revision != "unresolved" else ""
    return f"backend `{backend}`, model `{model}`{at}, prompt `{prompt}`"


def card_metadata(
    name: str, licence: CardLicence, data: ExportRows, splits: list[str], configs: dict[str, CardConfig]
) -> str:
    """The YAML between the card's `---` lines."""
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        pretty_name=name,
        **licence.metadata(),
        language=["en"],  # the captions; every prompt asks for English
        annotations_creators=["machine-generated"],  # a captioning model or the template
        language_creators=["machine-generated"],
        size_categories=[size_category(len(data.rows))],
        task_categories=TASK_CATEGORIES,
        tags=BASE_TAGS + image_tags(data.view_kinds),
        configs=[
            {
                "config_name": config_name,
                "data_files": [{"split": s, "path": f"{c.folder}/{s}-*.parquet"} for s in splits],
                **({"default": True} if config_name == "default" else {}),
            }
            for config_name, c in configs.items()
        ],
    )
    return card_data.to_yaml()


def licence_lines(data: ExportRows) -> str:
    """Each object's own licence, counted, and what attribution asks (the card and LICENSE.md)."""
    licences = "\n".join(f"| {code} | {n} |" for code, n in sorted(data.licences.items()))
    credited = sum(needs_attribution(a["license"]) for a in data.attributions)
    attribution = (
        f"{credited} objects are under licences that require attribution (CC BY and its variants): "
        "`attribution.csv` beside this card names each object, its author and its source; keep it "
        "with any copy of the data."
        if credited
        else "No object records a licence that requires attribution."
    )
    return f"""| licence | objects |
| --- | --- |
{licences}

{attribution}"""


def licence_file(name: str, licence: CardLicence, data: ExportRows) -> str:
    """LICENSE.md, what the card's `license_link` points at when the licence is `other`."""
    return f"""# Licence of {name} (`{licence.name}`)

This dataset has no single licence. Each object's images are views of a source asset (renders of
a 3D model, or frames of a capture) and keep that asset's licence; the captions were written by a
machine (a captioning model or a template). Licences recorded per object, from the sources:

{licence_lines(data)}

Objects with no recorded licence fall under the terms of their source (see "Provenance" in
README.md).
"""


def dataset_card(
    name: str,
    licence: CardLicence | str,
    data: ExportRows,
    parquet_files: list[str],
    img_id_stride: int,
    configs: dict[str, CardConfig] | None = None,
    failures: dict[str, Counter] | None = None,
) -> str:
    licence = licence if isinstance(licence, CardLicence) else CardLicence(licence)
    configs = configs or {"default": CardConfig("data", {"images": "original files"})}
    splits = list(dict.fromkeys(f.split("/")[-1].split("-")[0] for f in parquet_files))  # in file order
    split_counts = {s: len({r.key for r in data.rows if r.split == s}) for s in splits}
    header = card_metadata(name, licence, data, splits, configs)
    images = "\n".join(f"- `{n}` (`{c.folder}/`): {_describe_images(c.encoding)}" for n, c in configs.items())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(data.sources.items()))
    categories = "\n".join(f"| {c} | {n} |" for c, n in sorted(data.categories.items()))
    views = "\n".join(f"- {n} objects: {what}" for what, n in sorted(data.view_producers.items()))
    captions = "\n".join(
        f"- {n} objects: {describe_caption_producer(p)}" for p, n in sorted(data.caption_producers.items())
    )
    split_summary = ", ".join(f"{s} {n} objects" for s, n in split_counts.items())
    template_note = (
        "\n> Captions from the `template` backend were written from metadata, not by a model.\n"
        if any(p[0] == "template" for p in data.caption_producers)
        else ""
    )
    return f"""---
{header}
---

# {name}

Multi-view image-caption data in the format of MVCap-4M (Omniview-Tuning, ECCV 2024), built with
`mvcap-build`: {data.objects} objects, {len(data.rows)} views, {len(data.categories)} categories,
in {len(parquet_files)} Parquet shard(s); splits by object: {split_summary}.

## Load

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files={{"train": "path/to/this/folder/data/train-*.parquet"}}, split="train")
ds = load_dataset("<user>/<repo>", split="train")   # once pushed to the Hub
```

(Locally, prefer `data_files` over `load_dataset("path/to/this/folder")`: `datasets` caches local
folders by their name, so two exports in folders of the same name can be confused.)

## Images

{images}

## Columns

{column_table().replace("img_id_stride", str(img_id_stride))}

`metadata/metadata_*.json` hold the same rows without image bytes and matrices, in MVCap's schema.

## Categories

| category | objects |
| --- | --- |
{categories}

## Licences

{licence_lines(data)}

## Provenance

Objects by source: {sources}.

Views:
{views}

Captions:
{captions}
{template_note}
Quality gates and failures:
{_gate_lines(data.caption_tries, failures or {})}

## Citation

The format and the training method are those of Omniview-Tuning (MVCap-4M):

```bibtex
{OVT_CITATION}
```
"""
