"""The caption stage over real renders: the template backend, the real hf backend with a tiny
random LLaVA, per-request failures, stale captions, resumability and the ledger."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import caption, render, tiny_render

from mvcap_build.caption.backends.base import CaptionResult
from mvcap_build.caption.prompts import PromptError, load_prompt
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest, read_objects, read_views_manifest
from mvcap_build.errors import StaleUnitsError

MVCAP_PROMPT = "Write a short description for the image, noting that the main instance of the image is a {category}."


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from mvcap_build.tiny_models.tiny_llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


def _uncaptioned(copy_of, captioned_root) -> DatasetRoot:
    root = DatasetRoot(copy_of(captioned_root))
    shutil.rmtree(root.path / "captions")
    return root


def test_prompts_are_mvcaps_wording():
    assert load_prompt("category_guided") == ("category_guided", MVCAP_PROMPT)
    assert load_prompt("plain")[1] == "Write a short description for the image."
    with pytest.raises(PromptError, match="category_guided"):
        load_prompt("nonexistent")


def test_template_captions_every_view_and_records_provenance(captioned_root):
    root = DatasetRoot(captioned_root)
    objects = read_objects(root)
    manifests = list(root.caption_manifests())
    assert len(manifests) == 3
    for path in manifests:
        captions = read_caption_manifest(path)
        views = read_views_manifest(root.view_manifest(captions.key))
        category = objects[captions.key].category  # the objects table is the one home of categories
        assert [r.view_index for r in captions.rows] == [v.view_index for v in views.views]
        assert captions.fingerprint.fields["views_digest"] == views.fingerprint.digest
        for row in captions.rows:
            assert (row.backend, row.model, row.prompt_name) == ("template", "none", "category_guided")
            assert row.prompt == MVCAP_PROMPT.format(category=category)
            assert category in row.caption
        # Views from different sides get different captions.
        assert len({r.caption for r in captions.rows}) > 1


def test_rerun_does_nothing(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    before = {p: p.read_bytes() for p in root.caption_manifests()}
    summary = caption(root)
    assert (summary.done, summary.already_done) == (0, 3)
    assert {p: p.read_bytes() for p in root.caption_manifests()} == before


def test_hf_backend_through_the_stage(captioned_root, copy_of, tiny_llava):
    root = _uncaptioned(copy_of, captioned_root)
    # A random model names nothing: the gates are off here, the plumbing is what is tested.
    settings = {
        "prompt": "plain",
        "backend": {"kind": "hf", "model": str(tiny_llava), "batch_size": 5, "max_new_tokens": 8},
        "gates": {"enabled": False},
    }
    summary = caption(root, settings)
    assert summary.done + sum(summary.failed.values()) == 3
    for path in root.caption_manifests():
        manifest = read_caption_manifest(path)
        assert len(manifest.rows) == 4 and all(r.caption for r in manifest.rows)
        assert {(r.backend, r.model, r.prompt_name) for r in manifest.rows} == {("hf", str(tiny_llava), "plain")}
        assert manifest.fingerprint.fields["model"] == str(tiny_llava)
        assert manifest.fingerprint.fields["revision"].startswith("local:")
    for entry in FailureLedger(root, "caption"):  # a random model may say nothing: that is a ledger entry
        assert entry.reason == "empty_caption"


def test_one_unreadable_view_fails_its_object_only(captioned_root, copy_of, tiny_llava):
    """A truncated PNG is that object's failure; the batch it shared goes on and commits the rest."""
    root = _uncaptioned(copy_of, captioned_root)
    broken = root.view_dir("demo/mug-000") / "002.png"
    broken.write_bytes(broken.read_bytes()[:40])
    settings = {
        "backend": {"kind": "hf", "model": str(tiny_llava), "batch_size": 12, "max_new_tokens": 4},
        "gates": {"enabled": False},
    }
    summary = caption(root, settings)
    assert summary.failed["unreadable_image"] == 1
    entry = FailureLedger(root, "caption").get("demo/mug-000")
    assert entry.reason == "unreadable_image" and "views [2] of 4" in entry.detail
    assert not root.caption_manifest("demo/mug-000").exists()
    assert summary.done + summary.failed["empty_caption"] == 2


class _SilentBackend:
    """A backend that answers with empty strings for one object, as a broken model would."""

    name, model_id = "silent", "none"

    def caption(self, requests):
        return [CaptionResult.ok("" if r.key == "demo/mug-000" else f"a fine {r.category}") for r in requests]


def test_empty_captions_go_to_the_ledger(captioned_root, copy_of):
    root = _uncaptioned(copy_of, captioned_root)
    summary = caption(root, backend=_SilentBackend())
    assert summary.done == 2 and summary.failed == {"empty_caption": 1}
    [entry] = list(FailureLedger(root, "caption"))
    assert entry.key == "demo/mug-000" and "views [0, 1, 2, 3]" in entry.detail
    assert not root.caption_manifest("demo/mug-000").exists()


def test_changed_prompt_stops_and_redo_stale_redoes_exactly_the_stale(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    before = {p: p.read_bytes() for p in root.caption_manifests()}
    with pytest.raises(StaleUnitsError) as stopped:
        caption(root, {"prompt": "plain"})
    assert (
        "3 of 3 objects" in str(stopped.value)
        and "prompt" in str(stopped.value)
        and "--redo stale" in str(stopped.value)
    )
    assert {p: p.read_bytes() for p in root.caption_manifests()} == before  # nothing was touched
    assert len(root.run_configs("caption")) == 1  # the refused run never started: no run config
    # One object made with the new prompt already: only the two others are stale.
    root.caption_manifest("demo/car-000").unlink()
    summary = caption(root, {"prompt": "plain"}, redo="stale")
    assert (summary.done, summary.redone, summary.already_done) == (3, 2, 0)
    again = caption(root, {"prompt": "plain"}, redo="stale")
    assert (again.done, again.already_done) == (0, 3)
    for path in root.caption_manifests():
        assert {r.prompt_name for r in read_caption_manifest(path).rows} == {"plain"}


def test_rerendered_views_make_their_captions_stale(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    render(root, tiny_render(samples=8), redo="stale")
    with pytest.raises(StaleUnitsError, match="views_digest"):
        caption(root)
    assert caption(root, redo="stale").redone == 3


def mvcap(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvcap_build", *args], capture_output=True, text=True, **kwargs)


def test_model_without_backend_runs_the_hf_backend(captioned_root, copy_of, tiny_llava):
    import os

    root = _uncaptioned(copy_of, captioned_root)
    env = {k: v for k, v in os.environ.items() if "DISABLE_PROGRESS_BARS" not in k}  # as a user's shell has it
    result = mvcap(
        "caption", str(root.path), "--model", str(tiny_llava), "--max-new-tokens", "4", "--no-gates", "--quiet", env=env
    )
    assert result.returncode in (0, 1), result.stderr  # 1 only if the random model said nothing at all
    rows = [row for path in root.caption_manifests() for row in read_caption_manifest(path).rows]
    assert rows and {(r.backend, r.model) for r in rows} == {("hf", str(tiny_llava))}
    assert "template" not in result.stdout + result.stderr
    assert "Loading weights" not in result.stderr and "Warning" not in result.stderr, result.stderr  # no library noise


def test_template_with_a_model_is_a_clear_error(captioned_root):
    result = mvcap("caption", str(captioned_root), "--backend", "template", "--model", "llava")
    assert result.returncode == 2 and "template backend uses no model" in result.stderr


def test_another_model_stops_before_loading_it(captioned_root, copy_of, tiny_llava):
    """Template captions, then a model: the run names backend and model as changed, before any
    model loads, and `--redo stale` re-captions with the model."""
    root = DatasetRoot(copy_of(captioned_root))
    settings = {"backend": {"kind": "hf", "model": str(tiny_llava), "max_new_tokens": 4}, "gates": {"enabled": False}}
    with pytest.raises(StaleUnitsError) as stopped:
        caption(root, settings)
    assert 'backend: "template" -> "hf"' in str(stopped.value) and f'-> "{tiny_llava}"' in str(stopped.value)
    summary = caption(root, settings, redo="stale")
    assert summary.done + sum(summary.failed.values()) == 3 and summary.redone == summary.done
    # A redo that failed (a random model may say nothing) removes the stale captions it replaced.
    assert len(list(root.caption_manifests())) == summary.done
    for path in root.caption_manifests():
        assert {r.model for r in read_caption_manifest(path).rows} == {str(tiny_llava)}


def test_model_flag_keeps_a_model_backend_and_replaces_only_the_template():
    from mvcap_build.caption.config import apply_backend_flags

    assert apply_backend_flags({}, None, "m", {})["backend"] == {"kind": "hf", "model": "m"}
    assert apply_backend_flags({"backend": "template"}, None, "m", {})["backend"] == {"kind": "hf", "model": "m"}
    for kind in ("vllm", "openai"):  # a file's model backend stays; the flag only names the model
        assert apply_backend_flags({"backend": {"kind": kind, "batch_size": 4}}, None, "m", {})["backend"] == {
            "kind": kind,
            "batch_size": 4,
            "model": "m",
        }
