"""Stage 2, `mvcap extract`: existing multi-view captures (MVImgNet, IM3D, NeRF-synthetic
folders) become views with recorded cameras.

`capture.py` is the seam: each reader package (`mvimgnet/`, `nerf/`) exposes a `CaptureReader`
that lists ObjectRecords and parses one into a `Capture`; `readers.py` registers them by YAML
`kind:` (their configs are `mvimgnet_config.py`, `nerf_config.py`, gathered in `config.py`).
`colmap.py` and `geometry.py` hold what the readers share (COLMAP models; up and centre
estimates), names inside the data follow `mvcap_build.dataset.safe_paths`. `select.py` chooses
frames, `views.py` crops and records cameras, and `stage.py` commits each instance whole."""
