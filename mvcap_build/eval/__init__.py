"""`mvcap eval`: zero-shot evaluation of CLIP and OVT checkpoints, per viewpoint.

settings      EvalSettings: templates, batching, device, viewpoint bins, canonical band (pydantic only)
templates     CLIP's 80 ImageNet prompt templates; class text embeddings (normalised template mean)
models        what to evaluate, by spec: OVT checkpoint, training run, or plain CLIP (Hub id / folder)
clip_encoder  a plain CLIP behind OVTModel's interface
images        images -> embeddings, batched, decoded in threads; unreadable images skipped and reported
classnames    class-name files (txt, JSON list, JSON dict, CSV) and label-set files
imagefolder   ImageFolder benchmarks (root/<class folder>/<images>), OVT's released layouts included
export_split  the held-out split of an mvcap export: per-viewpoint accuracy and invariance
metrics       pure functions: top-k hits, viewpoint bins, canonical views, invariance, retrieval
run           run_eval: every model on every benchmark, one model in memory at a time
report        results.json, results.md and polar PNGs

Import from the submodules; this package imports nothing heavy so `mvcap --help` stays fast.
"""
