"""`mvcap eval`: zero-shot top-1/top-5 of CLIP and OVT models side by side, on ImageFolder
benchmarks and on an export's held-out split (per viewpoint, with invariance figures).

torch, transformers and matplotlib are imported inside the command, so `mvcap --help` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mvcap_build.cli.common import user_errors
from mvcap_build.cli.output import quiet_libraries


class Templates(str, Enum):
    eighty = "80"
    one = "1"
    caption = "caption"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def eval_command(
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="MODEL",
            help="What to evaluate, one or more: an OVT checkpoint folder (RUN/checkpoints/step-N), "
            "a training run folder (its latest checkpoint), a local CLIP folder, "
            "or a Hub CLIP id (openai/clip-vit-base-patch32).",
        ),
    ],
    imagefolder: Annotated[
        list[Path] | None,
        typer.Option(
            "--imagefolder",
            help="ImageFolder benchmark: ROOT/CLASS_FOLDER/IMAGE files. Repeatable, each with its own --classnames.",
        ),
    ] = None,
    classnames: Annotated[
        list[Path] | None,
        typer.Option(
            "--classnames",
            help="Class names of the matching --imagefolder: .txt (one per line, sorted folder order), "
            ".json (list, or folder -> name), or .csv (folder,name).",
        ),
    ] = None,
    label_set: Annotated[
        list[Path] | None,
        typer.Option(
            "--label-set",
            help="Names the model chooses among, when more than the benchmark's own "
            "(e.g. ImageNet's 1000 for ImageNet-V+): one per line or a JSON list. "
            "Give one for all benchmarks or one per --imagefolder.",
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="A dataset root or the folder written by `mvcap export`: "
            "evaluate on its held-out split, per viewpoint.",
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Split of --export to evaluate (default: test, else validation).")
    ] = None,
    allow_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-overlap",
            help="Score an OVT model on the --export split even if it holds objects the model was trained on "
            "(by default eval refuses), with a warning on screen and in the report.",
        ),
    ] = False,
    with_base: Annotated[
        bool, typer.Option("--with-base", help="Also evaluate each OVT model's base CLIP, in the column after it.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder. Default: beside what is evaluated, not the current folder: "
            "RUN/eval/YYYYmmdd-HHMMSS of the first OVT model's training run, "
            "else ROOT/eval/YYYYmmdd-HHMMSS of the --export's dataset root. "
            "Needed when only CLIPs are scored on --imagefolder.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    device: Annotated[Device, typer.Option(help="auto: cuda when available.")] = Device.auto,
    templates: Annotated[
        Templates,
        typer.Option(
            help="80: CLIP's ImageNet prompt templates, averaged (as OVT); "
            '1: "a photo of a {}."; '
            "caption: the template captioner's sentence over its 32 viewpoint phrases "
            '("A chair, seen from the back, from above, ..."), for models fine-tuned on such captions'
        ),
    ] = Templates.eighty,
    workers: Annotated[int, typer.Option(help="Threads decoding images ahead of the model (0: none).")] = 4,
    azimuth_bin: Annotated[
        float, typer.Option(help="Azimuth bin width in degrees, dividing 360; bins are centred on 0 (the front).")
    ] = 30.0,
    elevation_bin: Annotated[float, typer.Option(help="Elevation bin width in degrees; bins start at -90.")] = 15.0,
    canonical_elevation: Annotated[
        tuple[float, float],
        typer.Option(metavar="LO HI", help="Canonical views: elevation within [LO, HI] degrees ..."),
    ] = (0.0, 30.0),
    canonical_azimuth: Annotated[
        float,
        typer.Option(help="... and azimuth within +- this many degrees of the front. Every other view is extreme."),
    ] = 45.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines; the table only.")] = False,
) -> None:
    """Zero-shot evaluation, as the original OVT code does it: each class's text embedding is the
    normalised mean of its normalised prompt-template embeddings; an image's class is the nearest
    by cosine; top-1 and top-5 accuracy.

    On an ImageFolder benchmark (`--imagefolder DIR --classnames FILE`, OVT's released benchmarks
    included): top-1/top-5 and per class. On an export's held-out split (`--export`), with the
    export's categories as the classes: accuracy per elevation and azimuth bin, canonical vs extreme
    views, the mean cosine of an object's views to their centre, and same-object retrieval (R@1, mAP).
    An OVT checkpoint is not scored on a split that holds objects it was trained on (its checkpoint
    lists them), unless --allow-overlap.

    Writes OUT/results.json (every number, each held-out view's prediction), OUT/results.md (models
    side by side) and, with --export, polar plots OUT/accuracy_by_azimuth.png and
    OUT/accuracy_by_elevation.png (bins without views hatched grey); prints the table. OUT is
    --out, else beside what is evaluated: RUN/eval/YYYYmmdd-HHMMSS for an OVT run or checkpoint,
    else ROOT/eval/YYYYmmdd-HHMMSS for --export ROOT.
    """
    with user_errors():
        quiet_libraries()
        import time

        from mvcap_build.config_io import validate
        from mvcap_build.errors import ConfigError
        from mvcap_build.eval.settings import EvalSettings

        imagefolder, classnames, label_set = imagefolder or [], classnames or [], label_set or []
        if not imagefolder and export is None:
            raise ConfigError("nothing to evaluate on: give --imagefolder DIR --classnames FILE and/or --export DIR")
        if len(classnames) != len(imagefolder):
            raise ConfigError(
                f"{len(imagefolder)} --imagefolder but {len(classnames)} --classnames: "
                "give one class-name file per benchmark"
            )
        if len(label_set) not in (0, 1, len(imagefolder)):
            raise ConfigError(
                f"{len(label_set)} --label-set for {len(imagefolder)} --imagefolder: "
                "give one for all, or one per benchmark"
            )
        settings = validate(
            EvalSettings,
            dict(
                templates=templates.value,
                batch_size=batch_size,
                device=device.value,
                workers=workers,
                azimuth_bin_deg=azimuth_bin,
                elevation_bin_deg=elevation_bin,
                canonical_elevation_deg=canonical_elevation,
                canonical_azimuth_deg=canonical_azimuth,
            ),
            "eval settings",
        )

        from mvcap_build.clip.imagefolder import ImageFolderBenchmark
        from mvcap_build.eval.export_split import ExportSplit
        from mvcap_build.eval.model_specs import resolve_models
        from mvcap_build.eval.run import Benchmarks

        # Every input is checked before the first model loads.
        label_sets = label_set * len(imagefolder) if len(label_set) == 1 else label_set or [None] * len(imagefolder)
        benchmarks = Benchmarks(
            [
                ImageFolderBenchmark.open(root, names, labels)
                for root, names, labels in zip(imagefolder, classnames, label_sets)
            ],
            ExportSplit.open(export, split) if export is not None else None,
        )
        specs = resolve_models(models, with_base=with_base)
        overlap_notes = []
        if benchmarks.export is not None:
            from mvcap_build.eval.leakage import check_overlap

            overlap_notes = check_overlap(specs, benchmarks.export, allow_overlap)
            for note in overlap_notes:
                typer.secho(note, fg=typer.colors.YELLOW, bold=note.startswith("WARNING"), err=True)
        out = out or _default_out(specs, benchmarks.export, time.strftime("%Y%m%d-%H%M%S"))

        from mvcap_build.eval.report import markdown, write_report
        from mvcap_build.eval.run import run_eval

        results = run_eval(specs, benchmarks, settings, show_progress=not quiet)
        if overlap_notes:  # into results.json and results.md as well
            results["export"].setdefault("notes", []).extend(overlap_notes)
        written = write_report(results, out)
        typer.echo(markdown(results))
        for bench in [*results["imagefolder"], *([results["export"]] if results["export"] else [])]:
            if bench["unreadable"]:
                first = bench["unreadable"][0]
                typer.secho(
                    f"warning: {len(bench['unreadable'])} unreadable images skipped "
                    f"(first: {first.get('path') or first.get('key')}: {first['error']})",
                    fg=typer.colors.YELLOW,
                    err=True,
                )
        typer.echo("wrote " + ", ".join(str(p) for p in written.values()))


def _default_out(specs, export, stamp: str) -> Path:
    """Beside what is evaluated: the first OVT model's training run, else the export's dataset root."""
    from mvcap_build.errors import ConfigError

    checkpoint = next((Path(spec.location) for spec in specs if spec.kind == "ovt"), None)
    if checkpoint is not None:
        folder = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    elif export is not None:
        # the dataset root the export is in (ROOT/export, ROOT/export/mvcap), never inside the export
        folder = next(
            (p for p in export.export_dir.resolve().parents if (p / "objects").is_dir()),
            export.export_dir.resolve().parent,
        )
    else:
        raise ConfigError("say where to write the results: --out DIR (no OVT run or --export to write beside)")
    out = folder / "eval" / stamp
    n = 1
    while out.exists():
        n += 1
        out = folder / "eval" / f"{stamp}-{n}"
    return out
