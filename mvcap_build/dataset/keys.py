"""Object keys (`<source>/<source id>`) and the one safe way to turn them into paths."""

from __future__ import annotations

import hashlib
import re

from mvcap_build.errors import ConfigError

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class InvalidKeyError(ConfigError):
    """A key that cannot name an object (bad source name, empty id)."""


def make_key(source: str, source_id: str) -> str:
    if not _SOURCE.match(source):
        raise InvalidKeyError(f"source name {source!r} must match [a-z0-9][a-z0-9_-]*")
    if not source_id or source_id.strip() != source_id:
        raise InvalidKeyError(f"source id {source_id!r} must be non-empty without surrounding spaces")
    return f"{source}/{source_id}"


def split_key(key: str) -> tuple[str, str]:
    source, sep, source_id = key.partition("/")
    if not sep:
        raise InvalidKeyError(f"object key {key!r} is not of the form <source>/<source id>")
    make_key(source, source_id)
    return source, source_id


def path_component(source_id: str) -> str:
    """One file-name component for a source id: never `..`, never hidden, never a separator.

    Ids made only of safe characters are kept as they are (readable trees); any other id is
    sanitised and suffixed with a short hash of the original so that two ids cannot collide.
    """
    safe = _SAFE_CHARS.sub("_", source_id)
    if safe != source_id or safe.startswith(".") or len(safe) > 120:
        digest = hashlib.sha1(source_id.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe.lstrip('.')[:100]}-{digest}"
    return safe


def key_relpath(key: str) -> str:
    """`demo/chair-000` -> `demo/chair-000`; `local/sub/a b.glb` -> `local/sub_a_b.glb-<hash>`."""
    source, source_id = split_key(key)
    return f"{source}/{path_component(source_id)}"


def shard_of(key: str, num_shards: int) -> int:
    """Stable shard of a key: the same on every machine and independent of the object list."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def in_shard(key: str, shard: int, num_shards: int) -> bool:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"--shard must be in [0, --num-shards); got {shard} of {num_shards}")
    return num_shards == 1 or shard_of(key, num_shards) == shard
