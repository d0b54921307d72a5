"""`mvcap export --hf-push` against a fake Hub spoken to over HTTP by the real huggingface_hub client:
the Hub ends up with the export byte for byte, card last; a failed push resumes with only what is
missing; an unchanged export pushes nothing; stale shards go, a user's files stay; limits and
tokens fail early and clearly."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import export
from fake_hub import VALID_TOKEN, FakeHub
from typer.testing import CliRunner

from mvcap_build.cli import app
from mvcap_build.dataset import DatasetRoot
from mvcap_build.export.config import HubConfig
from mvcap_build.export.push import HubError, push_export

REPO = "owner/name"
# huggingface_hub's own LFS upload (`data=` a file object) is deprecated by its HTTP library: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
SHARD = re.compile(r"data/train-\d{5}-of-\d{5}\.parquet")


@pytest.fixture
def fake_hub(monkeypatch):
    """A fresh fake Hub; huggingface_hub in this process talks to it, without Xet (see fake_hub.py)."""
    import huggingface_hub.constants

    hub = FakeHub().start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    monkeypatch.delenv("MVCAP_DEBUG", raising=False)
    yield hub
    hub.stop()
    assert hub.unexpected == [], "the client called endpoints the fake does not know"


@pytest.fixture(scope="module")
def exported_root(captioned_root, tmp_path_factory) -> Path:
    """12 views in 4 Parquet shards of 3, plus MVCap's layout (which the push leaves out)."""
    root = tmp_path_factory.mktemp("hub") / "root"
    shutil.copytree(captioned_root, root)
    export(root, rows_per_parquet=3, mvcap_layout=True)
    return root


@pytest.fixture(scope="module")
def export_dir(exported_root) -> Path:
    return DatasetRoot(exported_root).export_dir


def pushed(export_dir: Path) -> dict[str, bytes]:
    """What the Hub should hold: every file of the export but MVCap's layout."""
    files = (path for path in sorted(export_dir.rglob("*")) if path.is_file())
    return {
        path.relative_to(export_dir).as_posix(): path.read_bytes()
        for path in files
        if path.relative_to(export_dir).parts[0] != "mvcap"
    }


def lfs_oids(files: dict[str, bytes]) -> set[str]:
    return {hashlib.sha256(content).hexdigest() for path, content in files.items() if path.endswith(".parquet")}


def repo_content(hub: FakeHub, revision: str = "main", repo_id: str = REPO) -> dict[str, bytes]:
    """The repo's files but the .gitattributes the Hub puts in a new repo."""
    return {path: content for path, content in hub.files(repo_id, revision).items() if path != ".gitattributes"}


def test_first_push_puts_every_file_on_the_hub_and_the_card_last(export_dir, fake_hub):
    expected = pushed(export_dir)
    assert len([p for p in expected if SHARD.fullmatch(p)]) == 4
    assert {"README.md", "export.json", "metadata/metadata_00000.json"} <= set(expected)
    assert (export_dir / "mvcap").is_dir() and not any(p.startswith("mvcap/") for p in expected)

    summary = push_export(export_dir, HubConfig(repo_id=REPO, max_files_per_commit=2), progress=False)

    assert repo_content(fake_hub) == expected  # byte-identical, nothing of mvcap/
    entries = fake_hub.entries(REPO)
    assert all(entries[p].lfs for p in expected if p.endswith(".parquet"))
    assert not entries["metadata/metadata_00000.json"].lfs  # both kinds of remote entry are exercised
    commits = fake_hub.commits
    assert len(commits) == summary.commits == math.ceil(len(expected) / 2)
    assert all(len(c.added) <= 2 for c in commits)
    order = [path for c in commits for path in c.added]
    assert sorted(order) == sorted(expected)
    assert order[:4] == sorted(p for p in expected if p.endswith(".parquet"))  # data first
    assert "README.md" in commits[-1].added and order[-1] == "README.md"  # the card last
    assert sum(size for _, size in fake_hub.lfs_puts) == sum(len(expected[p]) for p in order[:4])
    assert sorted(summary.uploaded) == sorted(expected) and summary.unchanged == 0
    assert summary.bytes_uploaded == sum(map(len, expected.values()))
    headline = summary.headline()
    assert f"pushed {len(expected)} files" in headline and f"{fake_hub.url}/datasets/{REPO}" in headline
    assert "not pushed: mvcap/" in headline
    assert fake_hub.created[0]["private"] is False  # not asked for: the owner's default


def test_commits_also_respect_the_byte_limit(export_dir, fake_hub):
    expected = pushed(export_dir)
    largest = max(map(len, expected.values()))
    push_export(export_dir, HubConfig(repo_id=REPO, max_bytes_per_commit=largest), progress=False)
    assert all(sum(len(expected[p]) for p in c.added) <= largest for c in fake_hub.commits)
    assert len(fake_hub.commits) > 1
    assert repo_content(fake_hub) == expected


@pytest.mark.parametrize("how", ["commit 500", "commit dropped", "upload refused"])
def test_a_failed_commit_is_a_clear_error_and_the_rerun_uploads_only_the_rest(export_dir, fake_hub, how):
    expected = pushed(export_dir)
    config = HubConfig(repo_id=REPO, max_files_per_commit=2)
    # The second commit holds shards 3 and 4: it fails after their uploads, or at the first of them.
    if how == "upload refused":
        fake_hub.fail_upload(3)
    else:
        fake_hub.fail_commit(2, "500" if how == "commit 500" else "drop")

    with pytest.raises(HubError) as failure:
        push_export(export_dir, config, progress=False)

    message = str(failure.value)
    total = math.ceil(len(expected) / 2)
    assert f"failed in commit 2 of {total}: " in message
    why = {
        "commit 500": "HTTP 500 from ",
        "commit dropped": "RemoteProtocolError: ",
        "upload refused": "HTTP 403 from ",
    }
    assert why[how] in message and "\n" not in message
    assert f"2 of the {len(expected)} files to upload are on the Hub" in message
    assert "rerun the same command to upload the rest" in message
    assert len(fake_hub.commits) == 1
    first = set(fake_hub.commits[0].added)
    puts_before = {oid for oid, _ in fake_hub.lfs_puts}

    summary = push_export(export_dir, config, progress=False)

    rerun_commits = fake_hub.commits[1:]
    assert {p for c in rerun_commits for p in c.added} == set(expected) - first  # only the rest
    assert sorted(summary.uploaded) == sorted(set(expected) - first) and summary.unchanged == len(first)
    puts_after = [oid for oid, _ in fake_hub.lfs_puts][len(puts_before) :]
    assert not set(puts_after) & puts_before  # no byte uploaded twice
    assert set(puts_after) | puts_before == lfs_oids(expected)
    assert repo_content(fake_hub) == expected


def test_an_unchanged_export_pushes_nothing_even_after_exporting_again(exported_root, copy_of, fake_hub):
    root = copy_of(exported_root)
    export_dir = DatasetRoot(root).export_dir
    push_export(export_dir, HubConfig(repo_id=REPO), progress=False)
    commits, puts, sent = len(fake_hub.commits), len(fake_hub.lfs_puts), fake_hub.uploaded_bytes

    export(root, rows_per_parquet=3, mvcap_layout=True)  # byte-identical files, new mtimes
    first_request = len(fake_hub.requests)
    summary = push_export(export_dir, HubConfig(repo_id=REPO), progress=False)

    assert (summary.commits, summary.uploaded, summary.bytes_uploaded) == (0, [], 0)
    assert (len(fake_hub.commits), len(fake_hub.lfs_puts), fake_hub.uploaded_bytes) == (commits, puts, sent)
    later = fake_hub.requests[first_request:]
    assert not [r for r in later if "/preupload/" in r or "/commit/" in r or "lfs" in r]
    assert sum("/tree/main" in r for r in later) > 1  # the listing came in pages, all of them read
    assert summary.headline().startswith(f"hub: {REPO} is up to date ({len(pushed(export_dir))} files unchanged)")


def test_a_changed_file_of_the_same_size_is_uploaded(exported_root, copy_of, fake_hub):
    export_dir = DatasetRoot(copy_of(exported_root)).export_dir
    push_export(export_dir, HubConfig(repo_id=REPO), progress=False)
    commits = len(fake_hub.commits)
    for name in ("data/train-00001-of-00004.parquet", "metadata/metadata_00000.json"):  # an LFS file, a regular one
        content = bytearray((export_dir / name).read_bytes())
        content[len(content) // 2] ^= 1  # same size: only the content hash tells
        (export_dir / name).write_bytes(bytes(content))

    summary = push_export(export_dir, HubConfig(repo_id=REPO), progress=False)

    assert summary.uploaded == ["data/train-00001-of-00004.parquet", "metadata/metadata_00000.json"]
    assert [c.added for c in fake_hub.commits[commits:]] == [summary.uploaded]
    assert repo_content(fake_hub) == pushed(export_dir)


def test_files_are_hashed_a_chunk_at_a_time(tmp_path):
    import tracemalloc

    from huggingface_hub.hf_api import RepoFile

    from mvcap_build.export.push import same_content

    path = tmp_path / "big.parquet"
    size = 48 * 1024 * 1024
    with path.open("wb") as file:
        file.truncate(size)  # zeros, without writing them
    zeros = bytes(size)
    sha256, blob = hashlib.sha256(zeros).hexdigest(), hashlib.sha1(b"blob %d\0" % size + zeros).hexdigest()
    del zeros
    as_lfs = RepoFile(
        path="big.parquet", size=size, oid="0" * 40, lfs={"oid": sha256, "size": size, "pointerSize": 134}
    )
    as_regular = RepoFile(path="big.parquet", size=size, oid=blob)
    tracemalloc.start()
    try:
        assert same_content(path, as_lfs) and same_content(path, as_regular)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"hashing a {size / 1e6:.0f} MB file held {peak / 1e6:.0f} MB at once"


def test_a_reexport_with_fewer_shards_deletes_the_stale_ones_and_keeps_the_users_files(
    exported_root, copy_of, fake_hub
):
    root = copy_of(exported_root)
    export_dir = DatasetRoot(root).export_dir
    push_export(export_dir, HubConfig(repo_id=REPO), progress=False)
    left_by_older_exports = ["data-224px-jpeg/train-00000-of-00001.parquet", "metadata/metadata_00001.json"]
    for path in left_by_older_exports:
        fake_hub.add_repo_file(REPO, path, b"from an older export")
    stale = sorted([p for p in fake_hub.files(REPO) if SHARD.fullmatch(p)] + left_by_older_exports)
    fake_hub.add_repo_file(REPO, "notes.md", b"my own notes")
    fake_hub.add_repo_file(REPO, "extra/figure.png", b"\x89PNG not ours")
    commits = len(fake_hub.commits)

    export(root, rows_per_parquet=6, mvcap_layout=True)  # 2 shards instead of 4
    summary = push_export(export_dir, HubConfig(repo_id=REPO, max_files_per_commit=1), progress=False)

    on_hub = fake_hub.files(REPO)
    assert sorted(p for p in on_hub if p.startswith("data/")) == [
        f"data/train-0000{i}-of-00002.parquet" for i in range(2)
    ]
    assert summary.deleted == stale
    assert on_hub["notes.md"] == b"my own notes" and "extra/figure.png" in on_hub and ".gitattributes" in on_hub
    this_push = fake_hub.commits[commits:]
    assert this_push[-1].deleted == stale and not any(c.deleted for c in this_push[:-1])  # with the card, last
    assert {p: c for p, c in on_hub.items() if p not in ("notes.md", "extra/figure.png", ".gitattributes")} == pushed(
        export_dir
    )


def test_the_hub_limits_are_checked_before_any_request(export_dir, fake_hub):
    with pytest.raises(
        HubError,
        match=r"export/data/ has 4 files .* at most 3 per folder .*max_shard_bytes or export\.rows_per_parquet",
    ):
        push_export(export_dir, HubConfig(repo_id=REPO, max_files_per_folder=3), progress=False)
    files = len(pushed(export_dir))
    with pytest.raises(HubError, match=rf"the export has {files} files to push .* at most {files - 1}"):
        push_export(export_dir, HubConfig(repo_id=REPO, max_files=files - 1), progress=False)
    assert fake_hub.requests == [] and fake_hub.commits == []


def test_our_layout_keeps_within_the_limits_it_checks(export_dir, fake_hub):
    # data/ holds the shards only, so its file count is the number of shards (each ~500 MB: 10,000
    # of them is 5 TB); mvcap/ holds one file per view and is neither counted nor pushed.
    data = sorted(p.name for p in (export_dir / "data").iterdir())
    assert all(SHARD.fullmatch(f"data/{name}") for name in data) and len(data) == 4
    on_disk = sum(1 for p in export_dir.rglob("*") if p.is_file())
    mvcap_files = sum(1 for p in (export_dir / "mvcap").rglob("*") if p.is_file())
    assert mvcap_files > 12  # one per view, and its metadata.json
    files = len(pushed(export_dir))
    assert files == on_disk - mvcap_files

    push_export(export_dir, HubConfig(repo_id=REPO, max_files=files, max_files_per_folder=4), progress=False)
    assert not any(p.startswith("mvcap/") for p in fake_hub.files(REPO))


def test_revision_creates_the_branch_and_private_the_repo(exported_root, copy_of, fake_hub):
    root = copy_of(exported_root)
    args = [
        "export",
        str(root),
        "--rows-per-parquet",
        "3",
        "--hf-push",
        REPO,
        "--revision",
        "dev",
        "--private",
        "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "revision dev" in result.output
    assert fake_hub.created[0]["private"] is True and fake_hub.repos[REPO].private
    assert repo_content(fake_hub, "dev") == pushed(DatasetRoot(root).export_dir)
    assert repo_content(fake_hub, "main") == {}  # main keeps only the Hub's .gitattributes

    again = CliRunner().invoke(app, args)  # the branch and the repo exist now
    assert again.exit_code == 0, again.output
    assert f"hub: {REPO} (revision dev) is up to date" in again.output


def test_the_hub_section_of_a_pipeline_file_is_read(exported_root, copy_of, fake_hub, tmp_path):
    root = copy_of(exported_root)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        yaml.safe_dump(
            {
                "root": str(root),
                "export": {"rows_per_parquet": 3},
                "hub": {"repo_id": "owner/from-file", "max_files_per_commit": 3},
            }
        )
    )

    result = CliRunner().invoke(app, ["export", str(root), "--config", str(pipeline), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "owner/from-file" in fake_hub.repos and all(len(c.added) <= 3 for c in fake_hub.commits)
    assert repo_content(fake_hub, repo_id="owner/from-file") == pushed(DatasetRoot(root).export_dir)

    build = CliRunner().invoke(app, ["build", str(pipeline), "--quiet"])  # mvcap build pushes after export
    assert build.exit_code == 0, build.output
    assert "hub: owner/from-file is up to date" in build.output


def run_cli(root: Path, hub: FakeHub, tmp_path: Path, **env_overrides) -> subprocess.CompletedProcess:
    """`mvcap export ROOT --hf-push owner/name` in a fresh process pointed at the fake Hub, with an empty
    HF_HOME so that a login saved on this machine cannot be used."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "MVCAP_DEBUG")
    }
    env.update(
        HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1"
    )
    env.update(env_overrides)
    command = [sys.executable, "-m", "mvcap_build", "export", str(root), "--hf-push", REPO, "--quiet"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_a_refused_token_is_one_clear_line_that_never_shows_the_token(exported_root, copy_of, fake_hub, tmp_path):
    root = copy_of(exported_root)
    secret = "hf_wrongSecretToken0123456789"

    result = run_cli(root, fake_hub, tmp_path, HF_TOKEN=secret)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot push to {REPO} on {fake_hub.url}: the Hub refused the token (HTTP 401): "
        "set HF_TOKEN to a valid token or run `hf auth login`"
    ]
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr
    assert "GET /api/whoami-v2" in fake_hub.requests
    assert fake_hub.repos == {} and not [r for r in fake_hub.requests if "whoami" not in r and "agent" not in r]

    debug = run_cli(root, fake_hub, tmp_path, HF_TOKEN=secret, MVCAP_DEBUG="1")  # the traceback neither
    assert debug.returncode != 0 and "HubError" in debug.stderr
    assert secret not in debug.stdout + debug.stderr


def test_no_token_is_a_clear_error(exported_root, copy_of, fake_hub, tmp_path):
    result = run_cli(copy_of(exported_root), fake_hub, tmp_path, HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
    assert result.returncode == 2, result.stderr
    assert f"error: no Hugging Face token to push to {REPO}: set HF_TOKEN or run `hf auth login`" in result.stderr
    assert fake_hub.requests == []


def test_launch_runs_the_push_as_its_own_one_shard_stage_after_export(exported_root, copy_of, fake_hub, tmp_path):
    """The push is a stage: `mvcap launch` runs it after export, as one shard with its marker."""
    root = copy_of(exported_root)
    pipeline = tmp_path / "pipeline.yaml"
    config = {
        "root": str(root),
        "export": {"rows_per_parquet": 3},
        "hub": {"repo_id": REPO},
        "runner": {"kind": "local", "poll_s": 0.2},
    }
    pipeline.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN_PATH", "MVCAP_DEBUG")}
    env.update(HF_ENDPOINT=fake_hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"))
    command = [sys.executable, "-m", "mvcap_build", "launch", str(pipeline)]
    launched = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "hub: 1 of 1 shard(s) done" in launched.stdout
    assert repo_content(fake_hub) == pushed(DatasetRoot(root).export_dir)
    (marker,) = (root / "launch" / "markers" / "hub").glob("*/shard-00000-of-00001.json")
    assert f"pushed {len(pushed(DatasetRoot(root).export_dir))} files" in marker.read_text()
