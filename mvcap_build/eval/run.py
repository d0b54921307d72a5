"""Every model on every benchmark, one model in memory at a time; the results as one dict.

The class text embeddings of a model are computed once per benchmark; images are decoded again
for each model (so memory holds one model, never all of them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mvcap_build.clip.imagefolder import ImageFolderBenchmark
from mvcap_build.eval.export_split import ExportSplit
from mvcap_build.eval.model_specs import ModelSpec
from mvcap_build.eval.settings import EvalSettings

FORMAT = "mvcap-eval/1"


@dataclass
class Benchmarks:
    imagefolders: list[ImageFolderBenchmark] = field(default_factory=list)
    export: ExportSplit | None = None


def run_eval(
    models: list[ModelSpec], benchmarks: Benchmarks, settings: EvalSettings, show_progress: bool = True
) -> dict:
    """The results dict that report.py writes (see its docstring for the layout)."""
    import torch

    from mvcap_build.clip.templates import class_text_embeddings, templates_for
    from mvcap_build.eval.export_split import evaluate_export
    from mvcap_build.eval.imagefolder import evaluate_imagefolder
    from mvcap_build.eval.model_specs import pick_device

    device = pick_device(settings.device)
    templates = templates_for(settings.templates)
    results = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {**settings.model_dump(mode="json"), "device": device},
        "models": [m.describe() for m in models],
        "imagefolder": [{**b.describe(), "unreadable": None, "results": {}} for b in benchmarks.imagefolders],
        "export": None
        if benchmarks.export is None
        else {**benchmarks.export.describe(), "unreadable": None, "results": {}},
    }
    for spec in models:
        model = spec.load(device)
        for bench, record in zip(benchmarks.imagefolders, results["imagefolder"]):
            weights = class_text_embeddings(model, bench.label_set, templates)
            result, unreadable = evaluate_imagefolder(
                model,
                bench,
                weights,
                batch_size=settings.batch_size,
                workers=settings.workers,
                label=f"{spec.name} on {bench.name}",
                show_progress=show_progress,
            )
            record["results"][spec.name] = result
            record["unreadable"] = unreadable
        if benchmarks.export is not None:
            data, record = benchmarks.export, results["export"]
            weights = class_text_embeddings(model, data.classnames, templates)
            result, unreadable = evaluate_export(
                model, data, weights, settings, label=f"{spec.name} on {data.name}", show_progress=show_progress
            )
            record["results"][spec.name] = result
            record["unreadable"] = unreadable
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    return results
