"""An ImageFolder dataset: `ROOT/<class folder>/<images>` plus a class-name file (eval's
benchmarks, train-ovt's `aux_data`).

Laid out as torchvision's `ImageFolder` reads it, which is how the original OVT evaluation reads
ImageNet-V, ImageNet-V+, OOD-CV, MIRO, ...: class folders sorted by name, images found at any
depth under them with the extensions below, files directly under ROOT ignored. The class-name
file forms are in `classnames`. With a label set, the classifier chooses among its names and
each folder's name must be one of them (OVT's `labels.txt` + `gt_label_*.txt` pair).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvcap_build.clip.classnames import read_classnames, read_label_set
from mvcap_build.errors import ConfigError

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively as there.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class ImageFolderBenchmark:
    root: Path
    classnames_file: Path
    folders: list[str]  # class folders, sorted
    names: list[str]  # class name of each folder
    label_set: list[str]  # the names the classifier chooses among
    targets: list[int]  # per folder: its name's position in label_set
    images: list[Path]
    image_folder: np.ndarray  # per image: its folder's position in folders
    label_set_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name

    @classmethod
    def open(cls, root: Path, classnames_file: Path, label_set_file: Path | None = None) -> ImageFolderBenchmark:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"ImageFolder benchmark not found: {root} is not a folder")
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise ConfigError(f"{root} has no class folders: an ImageFolder benchmark is ROOT/<class>/<images>")
        mapping = read_classnames(classnames_file, folders)
        names = [mapping[f] for f in folders]
        notes = []
        if label_set_file is None:
            label_set = list(dict.fromkeys(names))
        else:
            listed = read_label_set(label_set_file)
            label_set = list(dict.fromkeys(listed))
            if len(label_set) < len(listed):
                notes.append(f"{len(listed) - len(label_set)} repeated names in the label set were counted once")
            missing = sorted(set(names) - set(label_set))
            if missing:
                raise ConfigError(
                    f"{label_set_file} lacks {len(missing)} class names of {classnames_file}: "
                    + ", ".join(missing[:5])
                    + (", ..." if len(missing) > 5 else "")
                )
        position = {name: i for i, name in enumerate(label_set)}
        images, image_folder, empty = [], [], []
        for i, folder in enumerate(folders):
            files = _image_files(root / folder)
            if not files:
                empty.append(folder)
            images += files
            image_folder += [i] * len(files)
        if not images:
            raise ConfigError(
                f"{root} has no images ({', '.join(IMAGE_EXTENSIONS)}) in its {len(folders)} class folders"
            )
        if empty:
            notes.append(
                f"{len(empty)} class folders hold no images: "
                + ", ".join(empty[:5])
                + (", ..." if len(empty) > 5 else "")
            )
        return cls(
            root,
            Path(classnames_file),
            folders,
            names,
            label_set,
            [position[n] for n in names],
            images,
            np.asarray(image_folder, dtype=np.int64),
            Path(label_set_file) if label_set_file else None,
            notes,
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "root": str(self.root),
            "classnames_file": str(self.classnames_file),
            "label_set_file": str(self.label_set_file) if self.label_set_file else None,
            "class_folders": len(self.folders),
            "label_set_size": len(self.label_set),
            "images": len(self.images),
            "notes": self.notes,
        }


def _image_files(folder: Path) -> list[Path]:
    """Image files at any depth, following symlinked folders (as torchvision), sorted."""
    return sorted(
        Path(top) / name
        for top, _, names in os.walk(folder, followlinks=True)
        for name in names
        if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    )
