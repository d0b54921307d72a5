"""A tiny random LLaVA-1.5, saved to a folder, for tests and smoke runs without network.

It has the shape of `llava-hf/llava-1.5-7b-hf` at toy size: a CLIP vision tower (64 px images,
16 px patches, so 16 image tokens), a projector and a Llama language model, a byte-level BPE
tokenizer trained on the fly with `<image>` as a special token, and a `LlavaProcessor` with the
LLaVA-1.5 chat template. Its captions are random text; what it proves is that a backend loads a
real checkpoint from disk and runs the real preprocessing and `generate` path.

Two choices are there for vLLM, which loads the same folder in its own environment:
- the language model's head_dim is 64 (vLLM's CPU attention rejects 16);
- the weights are written in the Hub LLaVA-1.5 layout (`language_model.model.*`,
  `vision_tower.vision_model.*`), which vLLM expects; transformers 5.x saves `model.vision_tower.*`
  without the `vision_model` level, but maps the Hub layout back when it loads.

Requires the `caption` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 64
PATCH_SIZE = 16

# The chat template of llava-hf/llava-1.5-7b-hf: "USER: <image>\n{text} ASSISTANT:".
LLAVA_15_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]

# Enough text for the BPE trainer to learn merges for the words a captioning prompt uses.
_CORPUS = [
    "USER: Write a short description for the image, noting that the main instance of the image is a chair.",
    "ASSISTANT: A wooden chair with four legs and a curved back, seen from the side.",
    "A red sports car parked on a white background, viewed from the front.",
    "A small ceramic mug with a handle, photographed from above.",
    "The main object is a lamp with a round shade and a thin metal stand.",
    "A green plant in a pot, the leaves spreading out in every direction.",
    "A blue sofa with three cushions, seen from a low angle.",
    "Describe the object in the picture in one sentence.",
]


def build_tiny_llava(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (model, tokenizer, processor) into `out_dir` and return its path.

    Deterministic for a given `seed`. `AutoProcessor` and `AutoModelForImageTextToText` (or
    `LlavaForConditionalGeneration`) load the folder offline.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _build_tokenizer()
    vocab = tokenizer.get_vocab()

    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
        # Random logits spread wider than the default init gives, so greedy decoding has no
        # near-ties and batched output matches one-by-one output exactly.
        initializer_range=0.2,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=vocab[IMAGE_TOKEN],
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    config.pad_token_id = vocab["<pad>"]

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = vocab["<pad>"]
    model.generation_config.bos_token_id = vocab["<s>"]
    model.generation_config.eos_token_id = vocab["</s>"]
    model.save_pretrained(out)
    # Rewrite the weights in the Hub LLaVA-1.5 layout (see the module docstring).
    state = {_hub_key(k): v.detach().contiguous() for k, v in model.state_dict().items()}
    for stale in list(out.glob("model*.safetensors")) + list(out.glob("model*.safetensors.index.json")):
        stale.unlink()
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=LLAVA_15_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    processor.save_pretrained(out)
    # transformers 5 writes its own class name; the 4.x name loads in both major versions.
    tokenizer_config_path = out / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer_config_path.write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (out / "README.md").write_text(
        "Tiny random LLaVA-1.5 built by mvcap_build.tiny_models.tiny_llava for tests. "
        "Its captions are meaningless.\n" + json.dumps({"seed": seed}) + "\n"
    )
    return out


def _hub_key(key: str) -> str:
    """Map a transformers-5 LLaVA weight name to the llava-hf/llava-1.5 checkpoint name."""
    if key.startswith("lm_head."):
        return "language_model." + key
    if key.startswith("model.language_model."):
        return "language_model.model." + key[len("model.language_model.") :]
    if key.startswith("model.vision_tower."):
        rest = key[len("model.vision_tower.") :]
        if not rest.startswith("vision_model."):
            rest = "vision_model." + rest
        return "vision_tower." + rest
    if key.startswith("model.multi_modal_projector."):
        return key[len("model.") :]
    return key


def _build_tokenizer():
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from mvcap_build.tiny_models.bpe import train_byte_level_bpe

    backend = train_byte_level_bpe(_CORPUS, vocab_size=384, special_tokens=_SPECIAL_TOKENS, unk_token="<unk>")
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
    )
