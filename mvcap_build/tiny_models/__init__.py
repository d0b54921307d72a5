"""Tiny random models built on the spot (CLIP, LLaVA, their BPE tokenizer), for tests and the
offline demo: real folders that from_pretrained loads, with nothing pretrained and no download."""
