"""Stage 4, `mvcap export`: MVCap-schema metadata.json shards, Parquet shards and a dataset card."""
