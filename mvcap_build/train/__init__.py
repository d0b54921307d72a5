"""`mvcap train-ovt`: a minimal Omniview-Tuning trainer, one concern per module.

config      TrainOVTConfig, every default in one place (pydantic only: cheap to import)
data        exported Parquet shards -> batches of P objects x V views
preprocess  CLIP image preprocessing from the model's preprocessor_config.json
model       VIFormer and OVTModel (CLIP + LoRA on vision q/k/v + VIFormer)
loss        contrastive (same-object masked) + cross-view consistency (minimax hard views)
schedule    learning rate as a pure function of the step
checkpoint  save / resume / load_ovt_checkpoint
provenance  what a run trains on (export digest, keys, base revision) and the resume check
trainer     train_ovt(config, export_dir, output_dir), the loop under accelerate

Import from the submodules; this package imports nothing heavy so `mvcap --help` stays fast.
"""
