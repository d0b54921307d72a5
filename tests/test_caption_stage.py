"""The caption stage over real renders: the template backend, the real hf backend with a tiny
random LLaVA, resumability and the ledger."""

from __future__ import annotations

import pytest

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.prompts import PromptError, load_prompt
from mvcap_build.caption.stage import run_caption
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest, read_render_manifest

MVCAP_PROMPT = "Write a short description for the image, noting that the main instance of the image is a {category}."


def test_prompts_are_mvcaps_wording():
    assert load_prompt("category_guided") == ("category_guided", MVCAP_PROMPT)
    assert load_prompt("plain")[1] == "Write a short description for the image."
    with pytest.raises(PromptError, match="category_guided"):
        load_prompt("nonexistent")


def test_template_captions_every_view_and_records_provenance(captioned_root):
    root = DatasetRoot(captioned_root)
    manifests = list(root.caption_manifests())
    assert len(manifests) == 3
    for path in manifests:
        captions = read_caption_manifest(path)
        render = read_render_manifest(root.view_manifest(captions.key))
        assert [r.view_index for r in captions.rows] == [v.view_index for v in render.views]
        for row in captions.rows:
            assert (row.backend, row.model, row.prompt_name) == ("template", "none", "category_guided")
            assert row.prompt == MVCAP_PROMPT.format(category=render.category)
            assert render.category in row.caption
        # Views from different sides get different captions.
        assert len({r.caption for r in captions.rows}) > 1


def test_rerun_does_nothing(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    before = {p: p.read_bytes() for p in root.caption_manifests()}
    summary = run_caption(root, CaptionConfig(), show_progress=False)
    assert (summary.captioned, summary.already_done) == (0, 3)
    assert {p: p.read_bytes() for p in root.caption_manifests()} == before


def test_hf_backend_through_the_stage(captioned_root, copy_of, tmp_path):
    from mvcap_build.models.tiny_llava import build_tiny_llava

    model_dir = build_tiny_llava(tmp_path / "tiny-llava")
    root = DatasetRoot(copy_of(captioned_root))
    for path in list(root.caption_manifests()):
        path.unlink()
    config = CaptionConfig(backend="hf", model=str(model_dir), prompt="plain", batch_size=5, max_new_tokens=8)
    summary = run_caption(root, config, show_progress=False)
    assert summary.captioned + sum(summary.failed.values()) == 3
    for path in root.caption_manifests():
        rows = read_caption_manifest(path).rows
        assert len(rows) == 4 and all(r.caption for r in rows)
        assert {(r.backend, r.model, r.prompt_name) for r in rows} == {("hf", str(model_dir), "plain")}
    for entry in FailureLedger(root, "caption"):  # a random model may say nothing: that is a ledger entry
        assert entry.reason == "empty_caption"


class _SilentBackend:
    """A backend that answers with empty strings, as a broken model would."""

    name, model_id = "silent", "none"

    def caption(self, requests):
        return ["" if r.key == "demo/mug-000" else "fine" for r in requests]


def test_empty_captions_go_to_the_ledger(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    for path in list(root.caption_manifests()):
        path.unlink()
    summary = run_caption(root, CaptionConfig(), backend=_SilentBackend(), show_progress=False)
    assert summary.captioned == 2 and summary.failed == {"empty_caption": 1}
    [entry] = list(FailureLedger(root, "caption"))
    assert entry.key == "demo/mug-000" and "views [0, 1, 2, 3]" in entry.detail
    assert not root.caption_manifest("demo/mug-000").exists()
