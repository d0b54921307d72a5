"""`mvcap eval`: zero-shot evaluation of CLIP and OVT checkpoints, per viewpoint.

settings      EvalSettings: templates, batching, device, viewpoint bins, canonical band (pydantic only)
model_specs   what to evaluate, by spec: OVT checkpoint, training run, or plain CLIP (Hub id / folder)
images        images -> embeddings, batched, decoded in threads; unreadable images skipped and reported
imagefolder   zero-shot top-1/top-5 on an ImageFolder benchmark
export_split  the held-out split of an mvcap export: per-viewpoint accuracy and invariance
leakage       refusing a split that holds objects a checkpoint was trained on
metrics       pure functions: top-k hits, viewpoint bins, canonical views, invariance, retrieval
run           run_eval: every model on every benchmark, one model in memory at a time
report        results.json, results.md and polar PNGs

What eval shares with train-ovt is outside both: prompt templates, ImageFolder and class-name
reading, CLIP loading, preprocessing and encoding in mvcap_build/clip/; the OVT model and its
checkpoints in mvcap_build/ovt/. Import from the submodules; this package imports nothing heavy so
`mvcap --help` stays fast.
"""
