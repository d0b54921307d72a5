"""The OVT model and its checkpoints: what `mvcap train-ovt` trains and saves, and what
`mvcap eval` loads, so that neither imports the other.

config      OVTModelConfig: the model's settings (pydantic only), the first block of TrainOVTConfig
model       VIFormer and OVTModel (CLIP + LoRA on vision q/k/v + VIFormer)
checkpoint  the checkpoint folder: save / latest / resume state / load_ovt_checkpoint

Import from the submodules; this package imports nothing heavy so `mvcap --help` stays fast.
"""
