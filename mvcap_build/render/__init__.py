"""Stage 1, `mvcap render`: 3D assets to RGBA views with recorded cameras.

The host side (this package, minus `blender/`) plans work, runs Blender worker processes and
commits results; it never imports bpy. `blender/` is the only code that does.
"""
