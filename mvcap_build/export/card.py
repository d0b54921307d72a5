"""The dataset card (README.md) that the Hub shows and `datasets.load_dataset` reads."""

from __future__ import annotations

import yaml

from mvcap_build.export.rows import ExportRows


def dataset_card(name: str, license: str, data: ExportRows, parquet_files: list[str], img_id_stride: int) -> str:
    header = {
        "license": license,
        "task_categories": ["image-to-text", "zero-shot-image-classification"],
        "tags": ["multi-view", "mvcap", "viewpoint-invariance", "synthetic"],
        "pretty_name": name,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    }
    categories = "\n".join(f"| {c} | {n} |" for c, n in sorted(data.categories.items()))
    producers = "\n".join(f"- backend `{b}`, model `{m}`, prompt `{p}`" for b, m, p in sorted(data.producers))
    template_note = (
        "\n> Captions from the `template` backend were written from metadata, not by a model.\n"
        if any(b == "template" for b, _, _ in data.producers)
        else ""
    )
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}

Multi-view image-caption data in the format of MVCap-4M (Omniview-Tuning, ECCV 2024), built with
`mvcap-build`: {data.objects} objects, {len(data.rows)} views, {len(data.categories)} categories,
in {len(parquet_files)} Parquet shard(s).

## Load

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files="path/to/this/folder/data/*.parquet", split="train")
ds = load_dataset("<user>/<repo>", split="train")   # once pushed to the Hub
```

(Locally, prefer `data_files` over `load_dataset("path/to/this/folder")`: `datasets` caches local
folders by their name, so two exports in folders of the same name can be confused.)

## Columns

| column | meaning |
| --- | --- |
| `image` | the view, RGBA PNG with a transparent background |
| `path` | the image's path relative to the dataset root that built it (as in MVCap's metadata.json) |
| `caption` | one caption for this view |
| `obj_id` | integer object id, contiguous from 0 (objects sorted by `key`) |
| `img_id` | `obj_id * {img_id_stride} + view_index` |
| `key` | stable object identity, `<source>/<source id>` |
| `category`, `source` | object category; where the object came from |
| `view_index`, `azimuth_deg`, `elevation_deg`, `distance`, `fov_deg` | the camera on its sphere around the object |
| `c2w` | 4x4 camera-to-world matrix, OpenCV convention (x right, y down, z forward), z-up world, object in the unit cube |
| `caption_backend`, `caption_model` | what wrote the caption |

`metadata/metadata_*.json` hold the same rows without image bytes, in MVCap's schema.

## Categories

| category | objects |
| --- | --- |
{categories}

## Provenance

Rendered with: {", ".join(sorted(data.renderers))}.
Captions:
{producers}
{template_note}"""
