"""Stage 2, `mvcap extract`: existing multi-view captures (MVImgNet, IM3D, NeRF-synthetic
folders) become views with recorded cameras. Readers (`mvimgnet/`, `nerf.py`) parse a capture
into `capture.Capture`; `select.py` chooses frames, `views.py` crops and records cameras, and
`stage.py` commits each instance whole."""
