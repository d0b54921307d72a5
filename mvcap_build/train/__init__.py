"""`mvcap train-ovt`: a minimal Omniview-Tuning trainer, one concern per module.

config      TrainOVTConfig, every default in one place (pydantic only: cheap to import); its model
            block is mvcap_build.ovt.config.OVTModelConfig
data        exported Parquet shards -> batches of P objects x V views
aux_data    the second image-text source mixed into every batch (ImageFolder or Parquet)
augment     the paper's rotation + translation of the multi-view images
loss        contrastive (same-object masked) + cross-view consistency (minimax hard views)
mining      hard views and their anchors: in-batch, or from an embedding bank
schedule    learning rate as a pure function of the step
distributed gathering embeddings across processes
provenance  what a run trains on (export digest, keys, base revision) and the resume check
trainer     train_ovt(config, export_dir, output_dir), the loop under accelerate
stage       train-ovt as a pipeline stage

The model and its checkpoints are in mvcap_build/ovt/, CLIP loading and preprocessing in
mvcap_build/clip/ (eval uses both). Import from the submodules; this package imports nothing
heavy so `mvcap --help` stays fast.
"""
