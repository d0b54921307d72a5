"""The results dict -> results.json, results.md (models side by side) and polar PNGs.

results.json:
  format, created, settings (as resolved, device included), models (name, spec, kind, location,
  step, base_model)
  imagefolder: one entry per benchmark: name, root, classnames_file, label_set_file, class_folders,
    label_set_size, images, notes, unreadable [{path, error}], results {model name: {n, top1, top5,
    top1_correct, top5_correct, classes, per_class {folder: {name, n, top1, top5, ...}}}}
  export (or null): export_dir, split, image_folder, views, objects, classes, unreadable
    [{key, view_index, error}], results {model name: {n, top1, top5, ..., classes, objects,
    elevation_bins [{lo, hi, centre, n, top1, top5, ...}], azimuth_bins [...], canonical {...},
    extreme {...}, invariance {mean_cosine_to_centre, own_centre, global_centre, own_minus_global,
    objects}, retrieval {recall_at_1, map, queries}, views [{key, view_index, category, azimuth_deg,
    elevation_deg, azimuth_bin, elevation_bin, canonical, prediction, top1, top5, nearest {key,
    view_index}}]}}
Accuracies, recall and mAP are percentages; null where there was nothing to count.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mvcap_build.dataset.atomic import atomic_write_text

AZIMUTH_PNG = "accuracy_by_azimuth.png"
ELEVATION_PNG = "accuracy_by_elevation.png"


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write every output into `out_dir` (created); return them by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    atomic_write_text(written["json"], json.dumps(results, indent=1, allow_nan=False) + "\n")
    atomic_write_text(written["markdown"], markdown(results))
    if results.get("export"):
        written["azimuth_plot"] = polar_plot(results, "azimuth", out_dir / AZIMUTH_PNG)
        written["elevation_plot"] = polar_plot(results, "elevation", out_dir / ELEVATION_PNG)
    return written


def markdown(results: dict) -> str:
    """Rows are metrics, columns are models."""
    names = [m["name"] for m in results["models"]]
    settings = results["settings"]
    header = [
        "| metric | " + " | ".join(_escape(n) for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    rows = []

    def row(label: str, values: list) -> None:
        rows.append(f"| {_escape(label)} | " + " | ".join(values) + " |")

    for bench in results["imagefolder"]:
        per = [bench["results"].get(n, {}) for n in names]
        size = f"{bench['images'] - len(bench['unreadable'] or [])} images, {bench['label_set_size']} classes"
        row(f"{bench['name']} top-1 ({size})", [_pct(r.get("top1")) for r in per])
        row(f"{bench['name']} top-5", [_pct(r.get("top5")) for r in per])
    export = results.get("export")
    where = export and f"{Path(export['export_dir']).name}:{export['split']}"
    if export:
        per = [export["results"].get(n, {}) for n in names]
        first = per[0]
        row(
            f"{where} top-1 ({first.get('n')} views, {first.get('classes')} classes)",
            [_pct(r.get("top1")) for r in per],
        )
        row(f"{where} top-5", [_pct(r.get("top5")) for r in per])
        row(f"canonical views top-1 ({first['canonical']['n']} views)", [_pct(r["canonical"]["top1"]) for r in per])
        row(f"extreme views top-1 ({first['extreme']['n']} views)", [_pct(r["extreme"]["top1"]) for r in per])
        row(
            f"mean cosine of views to object centre ({first['invariance']['objects']} objects)",
            [_num(r["invariance"]["mean_cosine_to_centre"]) for r in per],
        )
        row(
            "... less the mean cosine to the centre of all views",
            [_num(r["invariance"].get("own_minus_global")) for r in per],
        )
        row(
            f"same-object retrieval R@1 ({first['retrieval']['queries']} queries)",
            [_pct(r["retrieval"]["recall_at_1"]) for r in per],
        )
        row("same-object retrieval mAP", [_pct(r["retrieval"]["map"]) for r in per])

    lo, hi = settings["canonical_elevation_deg"]
    lines = [
        "# mvcap eval",
        "",
        f"Zero-shot accuracy in %, {settings['templates']} prompt template(s), device {settings['device']}.",
        "",
        *header,
        *rows,
        "",
    ]
    if export:
        lines += [
            f"Canonical views: elevation {lo:g} to {hi:g} deg "
            f"and azimuth within +-{settings['canonical_azimuth_deg']:g} deg "
            "of the front; extreme views: all others.",
            "",
            *_bin_table(f"Top-1 by elevation, {where}", "elevation (deg)", "elevation_bins", export, names),
            *_bin_table(f"Top-1 by azimuth (0 = front), {where}", "azimuth (deg)", "azimuth_bins", export, names),
        ]
    for bench in [*results["imagefolder"], *([export] if export else [])]:
        for note in bench.get("notes") or []:
            lines.append(f"- {bench.get('name', 'export')}: {note}")
        if bench.get("unreadable"):
            lines.append(
                f"- {bench.get('name') or Path(bench['export_dir']).name}: {len(bench['unreadable'])} unreadable "
                "images skipped (listed in results.json)"
            )
    return "\n".join(lines).rstrip() + "\n"


def _bin_table(title: str, column: str, field: str, export: dict, names: list[str]) -> list[str]:
    per = [export["results"][n][field] for n in names]
    lines = [
        f"### {title}",
        "",
        f"| {column} | views | " + " | ".join(_escape(n) for n in names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for k, b in enumerate(per[0]):
        if b["n"]:
            lines.append(
                f"| {b['lo']:g} to {b['hi']:g} | {b['n']} | " + " | ".join(_pct(p[k]["top1"]) for p in per) + " |"
            )
    return lines + [""]


def polar_plot(results: dict, axis: str, path: Path) -> Path:
    """Save `polar_figure` as a PNG."""
    polar_figure(results, axis).savefig(path, dpi=100)
    return path


def polar_figure(results: dict, axis: str):
    """One polar bar chart of top-1 by `axis` ("azimuth" or "elevation") per model, side by side.
    A bin without views is a grey hatched wedge ("no views" in the legend), so it is not read as
    a bin at 0 %, which has views and draws no bar."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, Agg renders the PNG

    export = results["export"]
    names = [m["name"] for m in results["models"]]
    figure = Figure(figsize=(4.2 * len(names), 4.6), layout="constrained")
    for i, name in enumerate(names, 1):
        result = export["results"][name]
        bins = result[f"{axis}_bins"]
        ax = figure.add_subplot(1, len(names), i, projection="polar")
        seen = [b for b in bins if b["n"]]
        empty = [b for b in bins if not b["n"]]
        ax.bar(
            [math.radians(b["centre"]) for b in seen],
            [b["top1"] for b in seen],
            width=[math.radians(b["hi"] - b["lo"]) * 0.9 for b in seen],
            color="tab:blue",
            edgecolor="tab:blue",
            alpha=0.8,
        )
        if empty:
            ax.bar(
                [math.radians(b["centre"]) for b in empty],
                [100.0] * len(empty),
                width=[math.radians(b["hi"] - b["lo"]) * 0.9 for b in empty],
                color="0.92",
                edgecolor="0.6",
                hatch="///",
                linewidth=0.5,
                label="no views",
            )
            ax.legend(loc="lower right", bbox_to_anchor=(1.12, -0.12), fontsize=7, frameon=False)
        ax.set_ylim(0, 100)
        if axis == "azimuth":
            ax.set_theta_zero_location("N")  # the front up; counter-clockwise seen from above
            ax.set_theta_direction(1)
        else:
            ax.set_thetamin(-90)
            ax.set_thetamax(90)
        ax.set_title(f"{name}\ntop-1 {_pct(result['top1'])}% ({result['n']} views)", fontsize=9)
        ax.tick_params(labelsize=7)
    figure.suptitle(f"top-1 (%) by {axis}, {Path(export['export_dir']).name}:{export['split']}", fontsize=10)
    return figure


def _pct(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _num(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")
