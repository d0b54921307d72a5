"""The vllm backend, run in its own environment (.venv-vllm), against the hf backend's greedy
captions of the same tiny LLaVA computed here, in the main environment.

vLLM cannot live in the main environment (its torch/numpy pins conflict with Blender's), so each
check that needs it runs `.venv-vllm/bin/python` as a child process: one script for the backend
itself, one `python -m mvcap_build caption` for the CLI. Each starts the engine once (~10 s on
CPU). Without `.venv-vllm` these tests fail, never skip: `scripts/setup-vllm-env.sh` creates it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import caption  # noqa: E402

from mvcap_build.caption.backends.base import CaptionRequest  # noqa: E402
from mvcap_build.caption.backends.hf import HFBackend  # noqa: E402
from mvcap_build.caption.backends.vllm import VLLMBackend, VLLMBackendError  # noqa: E402
from mvcap_build.caption.config import CaptionConfig, HFBackendConfig, VLLMBackendConfig  # noqa: E402
from mvcap_build.caption.models import resolve_model  # noqa: E402
from mvcap_build.dataset import DatasetRoot, read_caption_manifest  # noqa: E402
from mvcap_build.tiny_models.tiny_llava import build_tiny_llava  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
MAX_NEW_TOKENS = 12
CHAIR = "Write a short description for the image, noting that the main instance of the image is a chair."
PROMPTS = [
    CHAIR,
    "Describe the object.",
    "Write a short description for the image, noting that the main instance of the image is a red car.",
    CHAIR,  # same prompt as the first, different picture: the image must matter
    "A lamp?",
]
UNREADABLE = 2  # the request whose file is not an image, in the middle of a batch
HEAVY = ("vllm", "torch", "transformers")

# Runs in .venv-vllm: the backend built from its config as the caption stage builds it, with the
# settings that make vLLM on CPU match transformers exactly (float32, eager). vLLM logs to stdout,
# so the answer goes to a file.
CHILD_SCRIPT = """
import json
import sys
from pathlib import Path


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    from mvcap_build.caption.backends.base import CaptionRequest
    from mvcap_build.caption.backends.vllm import VLLMBackend
    from mvcap_build.caption.config import VLLMBackendConfig

    config = VLLMBackendConfig(**spec["config"])
    identity = VLLMBackend.identity(config)
    heavy = sorted(name for name in spec["heavy"] if name in sys.modules)
    backend = VLLMBackend(config)
    requests = [CaptionRequest(**{**r, "image_path": Path(r["image_path"])}) for r in spec["requests"]]
    results = backend.caption(requests)
    alone = backend.caption(requests[spec["unreadable"] : spec["unreadable"] + 1])
    answer = {
        "identity": identity,
        "heavy_after_identity": heavy,
        "prompts": [backend.format_prompt(r.prompt) for r in requests],
        "results": [vars(result) for result in results],
        "alone": [vars(result) for result in alone],
    }
    Path(sys.argv[2]).write_text(json.dumps(answer))


if __name__ == "__main__":
    main()
"""


def vllm_python() -> Path:
    """The vLLM environment's interpreter; a missing environment is a failure, not a skip."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} not found: run scripts/setup-vllm-env.sh (vLLM needs its own environment)")
    return VLLM_PYTHON


def run_in_vllm_env(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.run(
        [str(vllm_python()), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )
    assert process.returncode == 0, (
        f"{args[:3]} failed ({process.returncode}):\n{process.stdout[-4000:]}\n{process.stderr[-6000:]}"
    )
    return process


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> list[CaptionRequest]:
    """RGBA renders of varied sizes (one larger than the model's 64 px), and one file that is not an image."""
    folder = tmp_path_factory.mktemp("views")
    colours = [(200, 30, 30), (30, 160, 60), (40, 60, 220), (240, 200, 20), (120, 40, 160)]
    result = []
    for index, (prompt, colour) in enumerate(zip(PROMPTS, colours, strict=True)):
        path = folder / f"{index:03d}.png"
        if index == UNREADABLE:
            path.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        else:
            image = Image.new("RGBA", (72 + 24 * index, 64 + 8 * index), (0, 0, 0, 0))
            draw = ImageDraw.Draw(image)
            if index % 2:
                draw.ellipse((6 + 4 * index, 8, 50 + 2 * index, 58), fill=colour + (255,))
            else:
                draw.rectangle((10, 4 + 3 * index, 60, 40 + 2 * index), fill=colour + (160,))
            image.save(path)
        result.append(
            CaptionRequest(key=f"test/obj{index}", view_index=index, image_path=path, prompt=prompt, category="chair")
        )
    return result


@pytest.fixture(scope="module")
def hf_results(tiny_llava: Path, requests: list[CaptionRequest]):
    config = HFBackendConfig(model=str(tiny_llava), max_new_tokens=MAX_NEW_TOKENS, batch_size=8, dtype="float32")
    backend = HFBackend(config)
    return backend.caption(requests), [backend.format_prompt(r.prompt) for r in requests]


def vllm_config(model: Path) -> VLLMBackendConfig:
    # batch_size 2: five requests take three engine calls, one holding the unreadable image.
    return VLLMBackendConfig(
        model=str(model), dtype="float32", enforce_eager=True, max_new_tokens=MAX_NEW_TOKENS, batch_size=2
    )


@pytest.fixture(scope="module")
def vllm_answer(tiny_llava: Path, requests: list[CaptionRequest], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One engine start in .venv-vllm: every backend-level check reads this answer."""
    folder = tmp_path_factory.mktemp("vllm-child")
    script, spec, answer = folder / "child.py", folder / "spec.json", folder / "answer.json"
    script.write_text(CHILD_SCRIPT)
    spec.write_text(
        json.dumps(
            {
                "config": vllm_config(tiny_llava).model_dump(),
                "heavy": HEAVY,
                "unreadable": UNREADABLE,
                "requests": [
                    {
                        "key": r.key,
                        "view_index": r.view_index,
                        "image_path": str(r.image_path),
                        "prompt": r.prompt,
                        "category": r.category,
                    }
                    for r in requests
                ],
            }
        )
    )
    run_in_vllm_env([str(script), str(spec), str(answer)])
    return json.loads(answer.read_text())


def test_vllm_captions_equal_hf_greedy_captions(vllm_answer, hf_results):
    hf, hf_prompts = hf_results
    assert vllm_answer["prompts"] == hf_prompts  # the same chat template, the same text
    got = [result["text"] for index, result in enumerate(vllm_answer["results"]) if index != UNREADABLE]
    want = [result.text for index, result in enumerate(hf) if index != UNREADABLE]
    assert all(want) and len(set(want)) > 1, want  # real, varied captions: the comparison means something
    assert got == want


def test_unreadable_image_fails_only_its_request(vllm_answer, hf_results):
    results = vllm_answer["results"]
    assert len(results) == len(PROMPTS)
    assert results[UNREADABLE]["text"] is None and results[UNREADABLE]["reason"] == "unreadable_image"
    assert "002.png" in results[UNREADABLE]["detail"]
    assert all(r["text"] and r["reason"] is None for i, r in enumerate(results) if i != UNREADABLE)
    # Alone in its call, too (no engine call at all), and hf says the same.
    assert [r["reason"] for r in vllm_answer["alone"]] == ["unreadable_image"]
    assert hf_results[0][UNREADABLE].reason == "unreadable_image"


def test_identity_needs_no_vllm_torch_or_transformers(vllm_answer, tiny_llava):
    assert vllm_answer["heavy_after_identity"] == []
    identity = vllm_answer["identity"]
    assert identity == {
        "backend": "vllm",
        "model": str(tiny_llava),
        "revision": identity["revision"],
        "dtype": "float32",
        "max_new_tokens": MAX_NEW_TOKENS,
        "decoding": "greedy",
        "image_max_side": None,
    }
    assert identity["revision"].startswith("local:")
    # The same in the main environment (where the caption stage fingerprints before any model
    # loads), and for the alias, which resolves to the Hub id without a request.
    probe = (
        "import json, sys\n"
        "from mvcap_build.caption.backends.vllm import VLLMBackend\n"
        "from mvcap_build.caption.config import VLLMBackendConfig\n"
        f"local = VLLMBackend.identity(VLLMBackendConfig(model={str(tiny_llava)!r}, dtype='float32', "
        f"max_new_tokens={MAX_NEW_TOKENS}))\n"
        "alias = VLLMBackend.identity(VLLMBackendConfig(model='llava', "
        "revision='0123456789abcdef0123456789abcdef01234567'))\n"
        f"print(json.dumps([local, alias, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    local, alias, heavy = json.loads(output.strip().splitlines()[-1])
    assert heavy == []
    assert local == identity
    assert (
        alias["model"] == "llava-hf/llava-1.5-7b-hf" and alias["revision"] == "0123456789abcdef0123456789abcdef01234567"
    )


def test_without_vllm_the_backend_says_how_to_get_it(tiny_llava, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    with pytest.raises(VLLMBackendError, match="run scripts/setup-vllm-env.sh") as error:
        VLLMBackend(VLLMBackendConfig(model=str(tiny_llava)))
    assert ".venv-vllm/bin/mvcap caption" in str(error.value)


def test_config_validates_and_maps_the_alias():
    config = CaptionConfig.model_validate(
        {"backend": {"kind": "vllm", "model": "llava", "batch_size": 64, "image_max_side": 336}}
    )
    assert isinstance(config.backend, VLLMBackendConfig)
    assert (config.backend.batch_size, config.backend.max_new_tokens, config.backend.tensor_parallel_size) == (
        64,
        77,
        1,
    )
    assert resolve_model(config.backend.model) == "llava-hf/llava-1.5-7b-hf"
    with pytest.raises(ValueError):
        CaptionConfig.model_validate({"backend": {"kind": "vllm", "device": "cuda"}})  # an hf setting


def test_mvcap_caption_cli_in_the_vllm_env(captioned_root, copy_of, tiny_llava, tmp_path):
    """`python -m mvcap_build caption --backend vllm` in .venv-vllm, on a root rendered by the main
    environment; its captions equal those of the hf backend through the same stage."""
    roots = {}
    for name in ("vllm", "hf"):
        root = copy_of(captioned_root)
        root = root.rename(tmp_path / f"root-{name}")
        shutil.rmtree(root / "captions")
        roots[name] = root
    gates = {"gates": {"enabled": False}} if "gates" in CaptionConfig.model_fields else {}  # random text fails them
    config = tmp_path / "caption.yaml"
    config.write_text(
        json.dumps(
            {"backend": {"kind": "vllm", "dtype": "float32", "enforce_eager": True, "max_new_tokens": 8}, **gates}
        )
    )
    run_in_vllm_env(
        [
            "-m",
            "mvcap_build",
            "caption",
            str(roots["vllm"]),
            "--backend",
            "vllm",
            "--model",
            str(tiny_llava),
            "--config",
            str(config),
            "--quiet",
        ]
    )
    caption(
        roots["hf"],
        {"backend": {"kind": "hf", "model": str(tiny_llava), "dtype": "float32", "max_new_tokens": 8}, **gates},
    )

    manifests = {name: sorted(DatasetRoot(root).caption_manifests()) for name, root in roots.items()}
    assert len(manifests["vllm"]) == 3
    assert [p.relative_to(roots["vllm"]) for p in manifests["vllm"]] == [
        p.relative_to(roots["hf"]) for p in manifests["hf"]
    ]
    for vllm_path, hf_path in zip(manifests["vllm"], manifests["hf"], strict=True):
        vllm_manifest, hf_manifest = read_caption_manifest(vllm_path), read_caption_manifest(hf_path)
        assert {(row.backend, row.model) for row in vllm_manifest.rows} == {("vllm", str(tiny_llava))}
        assert len(vllm_manifest.rows) == 4 and all(row.caption for row in vllm_manifest.rows)
        assert vllm_manifest.fingerprint.fields["backend"] == "vllm"
        assert vllm_manifest.fingerprint.fields["revision"] == hf_manifest.fingerprint.fields["revision"]
        assert [row.caption for row in vllm_manifest.rows] == [row.caption for row in hf_manifest.rows]
