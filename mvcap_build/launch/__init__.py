"""Running a pipeline's stages as shards on a runner (local processes, Slurm arrays, Ray), and
knowing which shards are done: `mvcap launch`, `mvcap run-shard` and the shards in `mvcap status`.

The runners only schedule shards. A shard is one `mvcap run-shard` process in the stage's own
Python environment; it writes a completion marker when it ends cleanly, and that marker, not the
scheduler's word, is what tells launch that the shard is done.
"""
