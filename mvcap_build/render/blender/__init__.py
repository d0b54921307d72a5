"""The bpy layer: the only code in mvcap_build that imports `bpy`.

It runs inside Blender worker processes started by `mvcap_build.render.workers` and talks to the
host through JSON lines (see `worker.py`). Nothing here imports the rest of the package.
"""
