"""Prompt templates and the zero-shot classifier built from them.

The 80 templates are OpenAI CLIP's for ImageNet (its "Prompt_Engineering_for_ImageNet" notebook),
which the original OVT evaluation (`scripts/eval_clip.py`) uses unchanged. A class's text embedding
is the normalised mean of its normalised template embeddings, as there.
"""

from __future__ import annotations

IMAGENET_TEMPLATES = [
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
]
SINGLE_TEMPLATE = ["a photo of a {}."]


def caption_templates() -> list[str]:
    """The template caption backend's sentence once per viewpoint phrase it can write (32):
    prompts in the format a model fine-tuned on template captions has seen, averaged over the
    viewpoints so that no view's phrase is favoured. `{article}` is filled in by `fill`."""
    from mvcap_build.caption.backends.template import SENTENCE, viewpoint_phrases

    return [SENTENCE.format(article="{article}", category="{}", where=where) for where in viewpoint_phrases()]


TEMPLATE_SETS = {"80": lambda: IMAGENET_TEMPLATES, "1": lambda: SINGLE_TEMPLATE, "caption": caption_templates}


def templates_for(name: str) -> list[str]:
    """The template set called `name`: "80", "1" or "caption"."""
    return TEMPLATE_SETS[name]()


def fill(template: str, classname: str) -> str:
    """A prompt: `{}` is the class name, `{article}` (caption templates) its "A" / "An"."""
    from mvcap_build.caption.backends.template import article

    return (
        template.format(classname, article=article(classname))
        if "{article}" in template
        else template.format(classname)
    )


def class_text_embeddings(model, classnames: list[str], templates: list[str]):
    """(classes, dim) tensor on the model's device: per class, its templates filled in and embedded
    (`model.embed_texts` normalises each), averaged, and normalised again.

    One class per batch, as the original: the padding of one class's prompts never depends on
    another class's names.
    """
    import torch
    import torch.nn.functional as F

    rows = []
    with torch.no_grad():
        for name in classnames:
            embeddings = model.embed_texts([fill(template, name) for template in templates])
            rows.append(F.normalize(embeddings.float().mean(dim=0), dim=-1))
    return torch.stack(rows)
