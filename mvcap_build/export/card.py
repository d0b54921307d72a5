"""The dataset card (README.md) that the Hub shows and `datasets.load_dataset` reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import yaml

from mvcap_build.dataset.export_schema import column_table
from mvcap_build.export.rows import ExportRows, needs_attribution

# As the authors ask to be cited (Heathcliff-saku/Omniview_Tuning README; ECCV 2024).
OVT_CITATION = """@article{ruan2024omniview,
  title   = {Omniview-Tuning: Boosting Viewpoint Invariance of Vision-Language Pre-training Models},
  author  = {Ruan, Shouwei and Dong, Yinpeng and Liu, Hanqing and Huang, Yao and Su, Hang and Wei, Xingxing},
  journal = {arXiv preprint arXiv:2404.12139},
  year    = {2024}
}"""


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
    return f"re-encoded for training: shorter side {encoding['shorter_side']} px, {encoding['format'].upper()}{quality}{on_white}"


def _gate_lines(tries: Counter, failures: dict[str, Counter]) -> str:
    views = sum(tries.values())
    first = tries.get(1, 0)
    lines = [f"- {first} of {views} captions passed the quality gates at the first try"
             + (f"; {views - first} after retries (at most {max(tries)} tries)" if views > first else "")]
    for stage, reasons in failures.items():
        if reasons:
            listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
            lines.append(f"- left out after {stage} failed: {sum(reasons.values())} objects ({listed})")
    return "\n".join(lines)


def describe_caption_producer(producer: tuple[str, str, str, str]) -> str:
    backend, model, revision, prompt = producer
    at = f" at revision `{revision}`" if revision and revision != "unresolved" else ""
    return f"backend `{backend}`, model `{model}`{at}, prompt `{prompt}`"


def dataset_card(name: str, license: str, data: ExportRows, parquet_files: list[str], img_id_stride: int,
                 configs: dict[str, CardConfig] | None = None, failures: dict[str, Counter] | None = None) -> str:
    configs = configs or {"default": CardConfig("data", {"images": "original files"})}
    splits = list(dict.fromkeys(f.split("/")[-1].split("-")[0] for f in parquet_files))  # in file order
    split_counts = {s: len({r.key for r in data.rows if r.split == s}) for s in splits}
    header = {
        "license": license,
        "task_categories": ["image-to-text", "zero-shot-image-classification"],
        "tags": ["multi-view", "mvcap", "viewpoint-invariance", "synthetic"],
        "pretty_name": name,
        "configs": [
            {"config_name": config_name, "data_files": [{"split": s, "path": f"{c.folder}/{s}-*.parquet"} for s in splits],
             **({"default": True} if config_name == "default" else {})}
            for config_name, c in configs.items()
        ],
    }
    images = "\n".join(f"- `{n}` (`{c.folder}/`): {_describe_images(c.encoding)}" for n, c in configs.items())
    sources = ", ".join(f"{source} {n}" for source, n in sorted(data.sources.items()))
    categories = "\n".join(f"| {c} | {n} |" for c, n in sorted(data.categories.items()))
    views = "\n".join(f"- {n} objects: {what}" for what, n in sorted(data.view_producers.items()))
    captions = "\n".join(f"- {n} objects: {describe_caption_producer(p)}" for p, n in sorted(data.caption_producers.items()))
    licences = "\n".join(f"| {code} | {n} |" for code, n in sorted(data.licences.items()))
    credited = sum(needs_attribution(a["license"]) for a in data.attributions)
    attribution = (
        f"{credited} objects are under licences that require attribution (CC BY and its variants): "
        "`attribution.csv` beside this card names each object, its author and its source; keep it "
        "with any copy of the data."
        if credited
        else "No object records a licence that requires attribution."
    )
    template_note = (
        "\n> Captions from the `template` backend were written from metadata, not by a model.\n"
        if any(p[0] == "template" for p in data.caption_producers)
        else ""
    )
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}

Multi-view image-caption data in the format of MVCap-4M (Omniview-Tuning, ECCV 2024), built with
`mvcap-build`: {data.objects} objects, {len(data.rows)} views, {len(data.categories)} categories,
in {len(parquet_files)} Parquet shard(s); splits by object: {", ".join(f"{s} {n} objects" for s, n in split_counts.items())}.

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

| licence | objects |
| --- | --- |
{licences}

{attribution}

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
