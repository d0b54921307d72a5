"""Zero-shot prompts in the template captioner's format, and invariance net of collapse."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mvcap_build.caption.backends.base import CaptionRequest  # noqa: E402
from mvcap_build.caption.backends.template import TemplateBackend, viewpoint_phrases  # noqa: E402
from mvcap_build.clip.templates import class_text_embeddings, fill, templates_for  # noqa: E402
from mvcap_build.eval import metrics  # noqa: E402


def test_caption_templates_are_the_captioners_sentence_over_every_viewpoint_phrase():
    templates = templates_for("caption")
    assert len(templates) == len(viewpoint_phrases()) == 32
    prompts = {fill(t, "chair") for t in templates}
    assert "A chair, seen from the back, from above, on a white background." in prompts
    assert fill(templates[0], "apple").startswith("An apple, seen from the front")
    # Every caption the backend writes, for any view, is one of the prompts.
    backend = TemplateBackend()
    for azimuth in range(0, 360, 15):
        for elevation in (-40, 0, 20, 40, 80):
            request = CaptionRequest(
                "k", 0, Path("v.png"), "", "chair", {"azimuth_deg": azimuth, "elevation_deg": elevation}
            )
            assert backend.caption([request])[0].text in prompts
    # The 80 templates are filled as before.
    assert fill(templates_for("80")[0], "apple") == "a bad photo of a apple."


class _CountingModel:
    """embed_texts: a normalised one-hot per distinct prompt, so a class embedding is readable."""

    def __init__(self):
        self.vocabulary: dict[str, int] = {}

    def embed_texts(self, texts):
        rows = torch.zeros(len(texts), 256)
        for i, text in enumerate(texts):
            rows[i, self.vocabulary.setdefault(text, len(self.vocabulary))] = 1.0
        return rows


def test_class_embedding_is_the_normalised_mean_over_the_32_viewpoint_prompts():
    model = _CountingModel()
    weights = class_text_embeddings(model, ["apple", "chair"], templates_for("caption"))
    assert weights.shape == (2, 256) and len(model.vocabulary) == 64
    # 32 distinct one-hots averaged and normalised: each weighs 1/sqrt(32); the classes share none.
    assert float(weights[0].max()) == pytest.approx(1 / math.sqrt(32))
    assert int((weights[0] > 0).sum()) == 32 and float(weights[0] @ weights[1]) == 0.0


def _unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_centre_contrast_separates_gathering_by_object_from_collapse():
    # Object A: views e1, e2; object B: e3, e2. Own centres: cosine 1/sqrt(2) for every view;
    # global centre (1, 2, 1)/sqrt(6): cosines 1/sqrt(6) and 2/sqrt(6) per object.
    embeddings = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0])
    groups = [np.array([0, 1]), np.array([2, 3])]
    result = metrics.centre_contrast(embeddings, groups)
    assert result["objects"] == 2
    assert result["own_centre"] == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert result["global_centre"] == pytest.approx(1.5 / math.sqrt(6), abs=1e-6)
    assert result["own_minus_global"] == pytest.approx(1 / math.sqrt(2) - 1.5 / math.sqrt(6), abs=1e-6)
    assert metrics.mean_cosine_to_centre(embeddings, groups)["mean_cosine_to_centre"] == pytest.approx(
        result["own_centre"]
    )

    # Collapse: every view near one point. Invariance looks perfect, the contrast is ~0.
    collapsed = _unit([1, 0.01, 0], [1, 0, 0.01], [1, -0.01, 0], [1, 0, -0.01])
    result = metrics.centre_contrast(collapsed, groups)
    assert result["own_centre"] > 0.9999 and abs(result["own_minus_global"]) < 1e-4

    # Objects apart, views identical within each: contrast = 1 - cosine to the global centre.
    apart = _unit([1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0])
    result = metrics.centre_contrast(apart, groups)
    assert result["own_minus_global"] == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)


def test_centre_contrast_skips_single_view_objects_and_reports_none_without_any():
    embeddings = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    assert metrics.centre_contrast(embeddings, [np.array([0]), np.array([1]), np.array([2])]) == {
        "own_centre": None,
        "global_centre": None,
        "own_minus_global": None,
        "objects": 0,
    }
    result = metrics.centre_contrast(embeddings, [np.array([0, 1]), np.array([2])])
    assert result["objects"] == 1
    # The global centre is over every view given (all three), not only those of 2+ view objects.
    assert result["global_centre"] == pytest.approx(1 / math.sqrt(3), abs=1e-6)
