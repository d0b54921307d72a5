"""Writing one Parquet shard, row group by row group, with pyarrow.

Only one row group's image bytes are in memory at a time (100 views by default), so memory does
not grow with the shard or the dataset. The file carries the `datasets` features in its schema
metadata (what `load_dataset` and the Hub viewer read to show the `image` column as images) and
uses the encodings `datasets` itself writes: image bytes stored plain (they are already
compressed), every other column dictionary-encoded and snappy-compressed, pages cut by content
(so a re-pushed shard that changed in a few rows shares most of its chunks on the Hub's storage).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from mvcap_build.dataset.export_schema import IMAGE_COLUMN, ExportRow, features
from mvcap_build.errors import EnvironmentBroken

# What `datasets` (5.x) uses: pages cut by content between 256 KiB and 1 MiB.
CONTENT_DEFINED_CHUNKS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


def _leaves(name: str, arrow_type) -> list[str]:
    """Parquet's leaf column paths under a top-level column (options are matched against them)."""
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return [leaf for field in arrow_type for leaf in _leaves(f"{name}.{field.name}", field.type)]
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return _leaves(f"{name}.list.element", arrow_type.value_type)
    return [name]


def write_parquet(
    rows: Sequence[ExportRow], image_of: Callable[[ExportRow], tuple[bytes, str]], path: Path, row_group_rows: int
) -> None:
    """`rows` as one shard; `image_of(row)` gives the bytes and file name stored in `image`."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise EnvironmentBroken("export needs pyarrow and datasets: pip install 'mvcap-build[export]'") from error
    schema = features().arrow_schema
    image_leaves = _leaves(IMAGE_COLUMN, schema.field(IMAGE_COLUMN).type)
    other_leaves = [leaf for field in schema if field.name != IMAGE_COLUMN for leaf in _leaves(field.name, field.type)]
    with pq.ParquetWriter(
        path,
        schema,
        compression={**{leaf: "none" for leaf in image_leaves}, **{leaf: "snappy" for leaf in other_leaves}},
        use_dictionary=other_leaves,
        column_encoding={leaf: "PLAIN" for leaf in image_leaves},
        write_page_index=True,
        use_content_defined_chunking=CONTENT_DEFINED_CHUNKS,
    ) as writer:
        for start in range(0, len(rows), row_group_rows):
            group = rows[start : start + row_group_rows]
            records = []
            for row in group:
                data, name = image_of(row)
                records.append({IMAGE_COLUMN: {"bytes": data, "path": name}, **row.as_dict()})
            writer.write_table(pa.Table.from_pylist(records, schema=schema))
        writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CONTENT_DEFINED_CHUNKS)})
