"""The transformers backend on a tiny random LLaVA built on the fly (no network)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch")
pytest.importorskip("transformers")

from mvcap_build.caption.backends.base import CaptionRequest, CaptionResult  # noqa: E402
from mvcap_build.caption.backends.hf import HFBackend, HFBackendError  # noqa: E402
from mvcap_build.caption.config import HFBackendConfig  # noqa: E402
from mvcap_build.tiny_models.tiny_llava import build_tiny_llava  # noqa: E402

MAX_NEW_TOKENS = 12
CHAIR = "Write a short description for the image, noting that the main instance of the image is a chair."
PROMPTS = [
    CHAIR,
    "Describe the object.",
    "Write a short description for the image, noting that the main instance of the image is a red car.",
    CHAIR,  # same prompt as the first, different picture: the image must matter
    "A lamp?",
]


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="module")
def backend(tiny_llava: Path) -> HFBackend:
    return HFBackend(HFBackendConfig(model=str(tiny_llava), max_new_tokens=MAX_NEW_TOKENS, batch_size=8))


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> list[CaptionRequest]:
    """RGBA renders: transparent background, one coloured shape each, of varied sizes."""
    folder = tmp_path_factory.mktemp("views")
    colours = [(200, 30, 30), (30, 160, 60), (40, 60, 220), (240, 200, 20), (120, 40, 160)]
    result = []
    for index, (prompt, colour) in enumerate(zip(PROMPTS, colours, strict=True)):
        image = Image.new("RGBA", (72 + 8 * index, 64), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        if index % 2:
            draw.ellipse((6 + 4 * index, 8, 50 + 2 * index, 58), fill=colour + (255,))
        else:
            draw.rectangle((10, 4 + 3 * index, 60, 40 + 2 * index), fill=colour + (255,))
        path = folder / f"{index:03d}.png"
        image.save(path)
        result.append(
            CaptionRequest(key=f"test/obj{index}", view_index=index, image_path=path, prompt=prompt, category="chair")
        )
    return result


def _reference_caption(model_dir: Path, request: CaptionRequest) -> str:
    """One request, no batching, no padding: what the backend must reproduce."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    with Image.open(request.image_path) as rgba:
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba.convert("RGBA")).convert("RGB")
    text = f"USER: <image>\n{request.prompt} ASSISTANT:"
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return processor.decode(new_tokens, skip_special_tokens=True).strip()


def test_tiny_llava_is_saved_in_hub_layout(tiny_llava: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(tiny_llava / "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in keys
    assert "language_model.model.embed_tokens.weight" in keys
    assert "language_model.lm_head.weight" in keys
    assert not any(key.startswith("model.") for key in keys)


def test_backend_identity_and_prompt_format(backend: HFBackend, tiny_llava: Path) -> None:
    assert backend.name == "hf"
    assert backend.model_id == str(tiny_llava)
    assert backend.device == "cpu"
    # The saved chat template gives exactly the LLaVA-1.5 format.
    assert backend.format_prompt("Describe it.") == "USER: <image>\nDescribe it. ASSISTANT:"


def test_captions_match_unbatched_reference(
    backend: HFBackend, requests: list[CaptionRequest], tiny_llava: Path
) -> None:
    results = backend.caption(requests)
    assert all(isinstance(result, CaptionResult) and result.reason is None for result in results)
    captions = [result.text for result in results]
    assert len(captions) == len(requests)
    assert all(isinstance(caption, str) and caption for caption in captions)
    # Random weights still give each (image, prompt) its own text, so a swap would show.
    assert len(set(captions)) == len(captions)
    assert captions == [_reference_caption(tiny_llava, request) for request in requests]


def test_chunking_does_not_change_output(backend: HFBackend, requests: list[CaptionRequest], tiny_llava: Path) -> None:
    whole = _texts(backend.caption(requests))
    by_two = HFBackend(HFBackendConfig(model=str(tiny_llava), max_new_tokens=MAX_NEW_TOKENS, batch_size=2))
    chunked = by_two.caption(requests)
    assert _texts(chunked) == whole
    assert _texts(backend.caption(requests[::-1])) == whole[::-1]
    assert backend.caption([]) == []


def test_unreadable_images_fail_only_their_own_requests(
    tiny_llava: Path, requests: list[CaptionRequest], tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 8)  # 24 bytes
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    missing = tmp_path / "missing.png"
    bad = {1: truncated, 3: missing, 4: not_an_image}
    mixed = list(requests)
    for index, path in bad.items():
        mixed.insert(index, replace(requests[0], key=f"bad/{path.name}", image_path=path))
    # batch_size 3: the bad files sit inside and at the edges of batches.
    three = HFBackend(HFBackendConfig(model=str(tiny_llava), max_new_tokens=MAX_NEW_TOKENS, batch_size=3))

    results = three.caption(mixed)

    assert len(results) == len(mixed)
    for index, path in bad.items():
        assert results[index].text is None
        assert results[index].reason == "unreadable_image"
        assert results[index].detail.startswith(f"{path}: ")
    good = [result for index, result in enumerate(results) if index not in bad]
    assert all(result.reason is None for result in good)
    assert _texts(good) == _texts(three.caption(requests))
    assert three.caption([mixed[1]]) == [results[1]]  # a batch of only bad images generates nothing


def _texts(results: list[CaptionResult]) -> list[str | None]:
    return [result.text for result in results]


def test_missing_model_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(HFBackendError, match="no-such-model") as excinfo:
        HFBackend(HFBackendConfig(model=str(missing)))
    assert "does not exist" in str(excinfo.value)


def test_incomplete_model_directory_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(HFBackendError, match="empty-model") as excinfo:
        HFBackend(HFBackendConfig(model=str(empty)))
    assert "save_pretrained" in str(excinfo.value)


def test_missing_transformers_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tiny_llava: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(HFBackendError, match=r"pip install 'mvcap-build\[caption\]'"):
        HFBackend(HFBackendConfig(model=str(tiny_llava)))
