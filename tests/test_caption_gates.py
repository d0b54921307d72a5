"""Quality gates on crafted answers: every gate, the retry with a stricter prompt, the ledger
when retries do not help, duplicates across objects, and a kill mid-caption then a rerun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import caption, render, tiny_render

from mvcap_build.caption.backends.base import CaptionResult
from mvcap_build.caption.config import GatesConfig
from mvcap_build.caption.gates import DuplicateWatch, Gates, names_category
from mvcap_build.dataset import DatasetRoot, FailureLedger, read_caption_manifest


@pytest.fixture(scope="module")
def gates() -> Gates:
    return Gates(GatesConfig())


@pytest.mark.parametrize(
    ("text", "category", "reason"),
    [
        ("", "chair", "empty_caption"),
        ("   ", "chair", "empty_caption"),
        ("I'm sorry, I cannot see the image.", "chair", "refusal"),
        ("As an AI, I am unable to determine what this chair is.", "chair", "refusal"),
        ("a chair a chair a chair a chair a chair", "chair", "repetitive"),
        ("chair " + " ".join(f"word{i}" for i in range(90)), "chair", "too_long"),
        ("A wooden object with four legs on a white background.", "chair", "category_missing"),
        ("A red chair with a tall back, seen from the front.", "chair", None),
        ("Two chairs side by side.", "chair", None),  # plural
        ("A grey couch with three cushions.", "sofa", None),  # synonym
        ("A glass coffee table on a rug.", "coffee table", None),  # multi-word category
        ("Some small boxes.", "box", None),  # -es plural
    ],
)
def test_each_gate(gates, text, category, reason):
    assert gates.judge([text], [category]) == [reason]


def test_clip_tokens_are_counted_with_clips_tokenizer(gates):
    assert gates.clip_tokens("a photo of a red chair") == 8  # 6 tokens + start and end
    long = " ".join(["chair"] * 75)
    assert gates.clip_tokens(long) == 77 and gates.judge([long], ["chair"]) == ["repetitive"]


def test_off_topic_captions_fail_the_similarity_gate():
    gates = Gates(GatesConfig(require_category=False))
    on, off = "A wooden chair with a padded seat.", "Quarterly revenue grew by four percent in the second half."
    assert gates.judge([on, off], ["chair", "chair"]) == [None, "off_topic"]
    low, high = gates.similarity([off, on], ["a photo of a chair", "a photo of a chair"])
    assert low < 0.2 < high


def test_names_category_with_configured_synonyms():
    assert not names_category("A hound sits.", "dog")
    assert names_category("A hound sits.", "dog", {"dog": ["hound"]})


def test_the_same_caption_on_too_many_objects_is_flagged():
    watch = DuplicateWatch(limit=2)
    assert not watch.seen_too_often("a", ["A chair."]) and not watch.seen_too_often("b", ["a chair"])
    assert watch.seen_too_often("c", ["A chair!"])  # normalised: the third object with it
    assert not watch.seen_too_often("a", ["A chair."])  # the same object again is not a duplicate


class _Scripted:
    """Answers badly unless the stricter retry prompt is there; records every prompt."""

    name, model_id = "hf", "scripted"

    def __init__(self, refuse_keys=()) -> None:
        self.prompts: list[str] = []
        self.refuse_keys = set(refuse_keys)

    def caption(self, requests):
        self.prompts += [r.prompt for r in requests]
        out = []
        for r in requests:
            if r.key in self.refuse_keys:
                out.append(CaptionResult.ok("I'm sorry, I cannot see the image."))
            elif "names the" in r.prompt:
                out.append(CaptionResult.ok(f"A {r.category} seen from view {r.view_index}."))
            else:
                out.append(CaptionResult.ok(f"An object seen from view {r.view_index}."))
        return out


def _uncaptioned(copy_of, captioned_root) -> DatasetRoot:
    root = DatasetRoot(copy_of(captioned_root))
    shutil.rmtree(root.path / "captions")
    return root


def test_a_failing_view_is_asked_again_with_a_stricter_prompt(captioned_root, copy_of):
    root = _uncaptioned(copy_of, captioned_root)
    backend = _Scripted(refuse_keys={"demo/mug-000"})
    summary = caption(root, {"gates": {"retries": 2}}, backend=backend)
    assert summary.done == 2 and dict(summary.failed) == {"refusal": 1}
    for path in root.caption_manifests():
        for row in read_caption_manifest(path).rows:
            assert row.tries == 2 and row.prompt.endswith("names the " + row.caption.split()[1] + ".")
    entry = FailureLedger(root, "caption").get("demo/mug-000")
    assert entry.reason == "refusal" and "views [0, 1, 2, 3]" in entry.detail
    asked_mug = [p for p in backend.prompts if "mug" in p]
    assert len(asked_mug) == 4 * 3  # 4 views, asked 1 + 2 retries times


def test_retries_zero_goes_straight_to_the_ledger(captioned_root, copy_of):
    root = _uncaptioned(copy_of, captioned_root)
    summary = caption(root, {"gates": {"retries": 0}}, backend=_Scripted())
    assert summary.done == 0 and dict(summary.failed) == {"category_missing": 3}


def test_a_killed_caption_run_resumes_to_the_same_captions(tmp_path):
    """hf backend on a tiny random LLaVA (greedy: deterministic), killed mid-run, rerun."""
    from mvcap_build.tiny_models.tiny_llava import build_tiny_llava

    model = build_tiny_llava(tmp_path / "tiny-llava")
    reference = tmp_path / "reference"
    demo = {
        "kind": "demo",
        "categories": ["chair", "table", "mug", "car", "lamp", "sofa", "stool", "bottle"],
        "per_category": 1,
    }
    assert render(reference, tiny_render(source=demo, views={"num_views": 3})).done == 8
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)
    args = ["--model", str(model), "--max-new-tokens", "24", "--batch-size", "1", "--no-gates", "--quiet"]

    def run(root):
        return subprocess.run(
            [sys.executable, "-m", "mvcap_build", "caption", str(root), *args], capture_output=True, text=True
        )

    assert run(reference).returncode in (0, 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", "caption", str(killed), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((killed / "captions").glob("*/*.json"))) >= 2:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(list((killed / "captions").glob("*/*.json")))
    assert 1 <= done_at_kill < 8, "the kill must land during captioning"
    assert run(killed).returncode in (0, 1)

    def captions(root):
        return {
            p.name: [r["caption"] for r in json.loads(p.read_text())["rows"]]
            for p in (root / "captions").glob("*/*.json")
        }

    assert (
        captions(killed) == captions(reference)
        and len(captions(reference)) + len(list((reference / "failures").rglob("*.json"))) == 8
    )
    assert not list(killed.rglob(".tmp-*"))


class _Unguided:
    """Captions that describe the view but never name the category (as an unguided prompt may)."""

    name, model_id = "hf", "unguided"

    def caption(self, requests):
        return [
            CaptionResult.ok(f"Something with {['round', 'square', 'tall', 'flat'][r.view_index % 4]} parts.")
            for r in requests
        ]


def test_caption_report_compares_two_caption_runs(captioned_root, copy_of, tmp_path):
    guided = DatasetRoot(copy_of(captioned_root))
    plain = DatasetRoot(tmp_path / "plain")
    shutil.copytree(guided.path, plain.path)
    shutil.rmtree(plain.path / "captions")
    caption(plain, {"prompt": "plain", "gates": {"enabled": False}}, backend=_Unguided())
    env = {k: v for k, v in os.environ.items() if "DISABLE_PROGRESS_BARS" not in k}  # as a user's shell has it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mvcap_build",
            "caption-report",
            str(guided.path),
            "--compare",
            str(plain.path),
            "-o",
            str(tmp_path / "report.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    ours, theirs = json.loads((tmp_path / "report.json").read_text())
    assert (ours["objects"], ours["views"], ours["naming_category"]) == (3, 12, 1.0)
    assert theirs["naming_category"] == 0.0 and theirs["prompts"] == ["plain"]
    assert 0 < ours["cross_view_similarity"] <= 1 and theirs["per_object"]["demo/mug-000"]["cross_view_similarity"] < 1
    assert "views naming the category" in result.stdout and "1.000" in result.stdout and "0.000" in result.stdout
    assert "Loading weights" not in result.stderr and "Warning" not in result.stderr, result.stderr  # no library noise
