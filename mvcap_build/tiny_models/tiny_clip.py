"""A tiny, randomly initialised CLIP that is built on the spot, with no network.

Tests and the offline demo need a real `CLIPModel` directory (weights, tokenizer,
`preprocessor_config.json`) that `from_pretrained` loads like any Hub checkpoint, so that the
trainer exercises its real loading path. Nothing here is pretrained: the weights are random and
the tokenizer is a byte-level BPE trained in a few milliseconds on the texts it is given.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# The same values as OpenAI's CLIP preprocessing, so a tiny model is fed like a real one.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<pad>"
MAX_TEXT_LENGTH = 77  # CLIP's context length; captions longer than this are truncated

# A few sentences so the tokenizer has a vocabulary even when no texts are given.
_BUILTIN_TEXTS = [
    "a photo of a chair seen from the front",
    "a 3D rendering of a red car from above",
    "a wooden table viewed from the side, on a white background",
    "a blue mug, the main instance of the image is a mug",
    "a small green plant in a pot seen from behind",
]


def build_tiny_clip(
    out_dir: str | Path,
    texts: list[str] | None = None,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLIP (hidden 32, 2 layers, 4 heads, patch 16, projection 32) to `out_dir`.

    The directory loads with `CLIPModel.from_pretrained`, `AutoTokenizer.from_pretrained` and
    holds a `preprocessor_config.json` for `image_size` pixels. It is written to a temporary
    folder and moved into place, so a half-written model is never mistaken for a finished one.
    The same `seed` and `texts` give the same weights and tokenizer.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tokenizer = _train_tokenizer(list(texts or []) + _BUILTIN_TEXTS)
        tokenizer.save_pretrained(tmp)
        config = CLIPConfig(
            text_config=dict(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=MAX_TEXT_LENGTH,
                # CLIP pools the text at the first EOS; id 2 would select its legacy argmax rule.
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            ),
            vision_config=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=image_size,
                patch_size=16,
            ),
            projection_dim=32,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPModel(config)
        model.save_pretrained(tmp)
        (tmp / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(image_size), indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _train_tokenizer(texts: list[str]):
    """Byte-level BPE with CLIP's special tokens, wrapped so `AutoTokenizer` can load it."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from mvcap_build.tiny_models.bpe import train_byte_level_bpe

    # CLIP's tokenizer lowercases too; special tokens get ids 0, 1, 2.
    tok = train_byte_level_bpe(texts, vocab_size=400, special_tokens=[BOS, EOS, PAD], lowercase=True)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=MAX_TEXT_LENGTH,
    )


def _preprocessor_config(image_size: int) -> dict:
    """What `CLIPImageProcessor` would save for this size, written by hand (no torchvision)."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
