"""`mvcap export --hf-push`: upload an export to a Hub dataset repo, so that a rerun finishes the job.

Why not one `HfApi.upload_folder` call:
- Resumable by diffing against the remote tree: a file the Hub already has with the same content
  (same LFS sha256, or same git blob id for a regular file) is not sent again. A push that died in
  commit k uploads only the rest when rerun, and an unchanged export (exports of an unchanged root
  are byte-identical) makes no commit at all. Nothing is stored locally to resume from.
- Commit batching: at most `max_files_per_commit` files and `max_bytes_per_commit` bytes per commit,
  so a failure loses at most one commit's work. Parquet shards go first and the card (README.md) in
  the last commit, together with the deletion of stale shards (remote files under the export's own
  folders that this export no longer has: the card's `data/train-*` globs would pick them up), so
  the Hub's viewer never reads a card that names files not there yet. A user's other files stay.
  (`upload_folder` gives no order and `upload_large_folder` keeps its state inside the folder.)
- The Hub's limits (files per repo, files per folder) are checked before anything is sent.
- `mvcap/` (MVCap's released layout, `--mvcap-layout`) is not pushed: its images are the ones in the
  Parquet shards, and one file per view would soon pass the per-folder limit.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mvcap_build.errors import EnvironmentBroken, UserError
from mvcap_build.export.config import HubConfig
from mvcap_build.export.mvcap_layout import FOLDER as MVCAP_FOLDER
from mvcap_build.progress import progress as progress_bar

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

REPO_TYPE = "dataset"
CARD = "README.md"
# Folders the export owns in the repo: what the export no longer has there is deleted. `data-*`
# holds training-ready shards beside `data/` (export.training_images).
OWNED_FOLDERS = ("data", "metadata")
OWNED_PREFIX = "data-"


class HubError(UserError, RuntimeError):
    """The push cannot go on: no token or a refused one, an export over the Hub's limits, a failed request."""


@dataclass
class PushSummary:
    repo_id: str
    revision: str
    url: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    commits: int = 0
    bytes_uploaded: int = 0
    not_pushed: list[str] = field(default_factory=list)  # local folders left out (mvcap/)

    def headline(self) -> str:
        return f"hub: {self.text()}"

    def text(self) -> str:
        where = "" if self.revision == "main" else f" (revision {self.revision})"
        if not self.uploaded and not self.deleted:
            line = f"{self.repo_id}{where} is up to date ({self.unchanged} files unchanged)"
        else:
            line = (
                f"pushed {_count(len(self.uploaded), 'file')} ({human_bytes(self.bytes_uploaded)}) in "
                f"{_count(self.commits, 'commit')} to {self.url} (revision {self.revision}); {self.unchanged} unchanged"
            )
            if self.deleted:
                line += f", {len(self.deleted)} stale deleted"
        if self.not_pushed:
            line += (
                f"; not pushed: {', '.join(f + '/' for f in self.not_pushed)} (its images are in the Parquet shards)"
            )
        return line


@dataclass
class PushPlan:
    uploads: list[str]  # repo paths, in commit order
    deletions: list[str]
    unchanged: int


def push_export(export_dir: Path, config: HubConfig, *, token: str | None = None, progress: bool = True) -> PushSummary:
    """Upload `export_dir` (less `mvcap/`) to the dataset repo `config.repo_id` at `config.revision`,
    creating the repo and the branch if missing. Only files the Hub does not have are sent."""
    if not config.repo_id:
        raise HubError("no Hub repo to push to: pass --hf-push OWNER/NAME or set hub.repo_id")
    export_dir = Path(export_dir)
    if not (export_dir / CARD).is_file():
        raise HubError(f"nothing to push: {export_dir} holds no export (run mvcap export first)")
    local = local_files(export_dir)
    check_hub_limits(local, config)
    hf_hub = _import_huggingface_hub()
    token = token or hf_hub.get_token()
    if not token:
        raise HubError(f"no Hugging Face token to push to {config.repo_id}: set HF_TOKEN or run `hf auth login`")
    api = hf_hub.HfApi(token=token)
    repo_id, revision = config.repo_id, config.revision
    with hub_errors(f"cannot push to {repo_id} on {api.endpoint}", token):
        api.whoami()
        # private=None when not asked for: a new repo gets the owner's default visibility.
        url = str(api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True, private=config.private or None))
        if revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True)
        remote = remote_files(api, repo_id, revision)
    plan = plan_push(local, remote, show_progress=progress)
    summary = PushSummary(repo_id, revision, url, unchanged=plan.unchanged, not_pushed=_left_out(export_dir))
    if plan.uploads or plan.deletions:
        with hf_hub.utils.disable_progress_bars():  # ours shows files; theirs would add one per file
            commit_in_batches(api, local, plan, config, summary, token, show_progress=progress)
    return summary


def _import_huggingface_hub():
    try:
        import huggingface_hub
        import huggingface_hub.utils
    except ImportError as error:
        raise EnvironmentBroken(
            "pushing to the Hub needs huggingface_hub: pip install 'mvcap-build[export]'"
        ) from error
    return huggingface_hub


def local_files(export_dir: Path) -> dict[str, Path]:
    """Repo path -> local file, for everything the push sends: the export less `mvcap/`."""
    files = {}
    for folder, subfolders, names in os.walk(export_dir):
        if Path(folder) == export_dir and MVCAP_FOLDER in subfolders:
            subfolders.remove(MVCAP_FOLDER)  # not walked: it can hold one file per view
        for name in names:
            path = Path(folder) / name
            files[path.relative_to(export_dir).as_posix()] = path
    return dict(sorted(files.items()))


def _left_out(export_dir: Path) -> list[str]:
    return [MVCAP_FOLDER] if (export_dir / MVCAP_FOLDER).is_dir() else []


def check_hub_limits(files: dict[str, Path], config: HubConfig) -> None:
    """Refuse, before any request, an export the Hub would refuse halfway through the push."""
    if len(files) > config.max_files:
        raise HubError(
            f"the export has {len(files)} files to push and a Hub repo holds at most {config.max_files} "
            f"(hub.max_files): {_fewer_files_advice('data')}"
        )
    per_folder = Counter(str(PurePosixPath(path).parent) for path in files)
    for folder, count in sorted(per_folder.items()):
        if count > config.max_files_per_folder:
            shown = "export/" if folder == "." else f"export/{folder}/"
            raise HubError(
                f"{shown} has {count} files and the Hub allows at most {config.max_files_per_folder} per folder "
                f"(hub.max_files_per_folder): {_fewer_files_advice(folder)}"
            )


def _fewer_files_advice(folder: str) -> str:
    if folder == "metadata":
        return "raise export.rows_per_metadata so fewer metadata files are written, and export again"
    return (
        "raise export.max_shard_bytes or export.rows_per_parquet so fewer, larger shards are written, and export again"
    )


def remote_files(api: HfApi, repo_id: str, revision: str) -> dict[str, RepoFile]:
    """Repo path -> the Hub's entry (size, blob id, LFS sha256) for every file at `revision`."""
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, recursive=True, revision=revision, repo_type=REPO_TYPE)
    return {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}


def plan_push(local: dict[str, Path], remote: dict[str, RepoFile], *, show_progress: bool = False) -> PushPlan:
    """What to upload (changed or missing files, in commit order) and what stale files to delete."""
    on_both = [path for path in local if path in remote]
    unchanged = set()
    with progress_bar("hub compare", total=len(on_both), enabled=show_progress) as bar:
        for path in on_both:
            if same_content(local[path], remote[path]):
                unchanged.add(path)
            bar.advance()
    uploads = sorted((path for path in local if path not in unchanged), key=commit_order)
    deletions = sorted(path for path in remote if path not in local and is_owned_by_export(path))
    return PushPlan(uploads, deletions, len(unchanged))


def commit_order(path: str) -> tuple[int, str]:
    """Parquet shards first, the card last, everything else between."""
    return (0 if path.endswith(".parquet") else 2 if path == CARD else 1, path)


def is_owned_by_export(path: str) -> bool:
    top = path.split("/", 1)[0]
    return "/" in path and (top in OWNED_FOLDERS or top.startswith(OWNED_PREFIX))


def same_content(path: Path, remote: RepoFile) -> bool:
    """Whether the Hub's file has this content: its LFS sha256 or, for a regular file, its git blob id."""
    size = path.stat().st_size
    if remote.size != size:
        return False
    if remote.lfs is not None:
        return file_sha256(path) == remote.lfs.sha256
    return git_blob_sha1(path, size) == remote.blob_id


def file_sha256(path: Path) -> str:
    return _hash_file(path, hashlib.sha256())


def git_blob_sha1(path: Path, size: int) -> str:
    """`git hash-object`: the sha1 of "blob <size>\\0" and the content."""
    return _hash_file(path, hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False))


def _hash_file(path: Path, hasher) -> str:
    with path.open("rb") as file:  # shards are ~500 MB: file_digest reads them through a small buffer
        return hashlib.file_digest(file, lambda: hasher).hexdigest()


def commit_batches(paths: list[str], sizes: dict[str, int], max_files: int, max_bytes: int) -> list[list[str]]:
    """Consecutive groups of at most `max_files` files and `max_bytes` bytes (a larger file goes alone);
    one empty group when there is nothing to upload, for the deletions."""
    batches: list[list[str]] = [[]]
    batch_bytes = 0
    for path in paths:
        batch = batches[-1]
        if batch and (len(batch) >= max_files or batch_bytes + sizes[path] > max_bytes):
            batches.append([])
            batch_bytes = 0
        batches[-1].append(path)
        batch_bytes += sizes[path]
    return batches


def commit_in_batches(
    api: HfApi,
    local: dict[str, Path],
    plan: PushPlan,
    config: HubConfig,
    summary: PushSummary,
    token: str,
    *,
    show_progress: bool,
) -> None:
    """One commit per batch; the stale files go in the last one, with the card. Fills `summary`."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    sizes = {path: local[path].stat().st_size for path in plan.uploads}
    batches = commit_batches(plan.uploads, sizes, config.max_files_per_commit, config.max_bytes_per_commit)
    with progress_bar("hub push", total=len(plan.uploads), enabled=show_progress) as bar:
        for number, batch in enumerate(batches, start=1):
            operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=local[path]) for path in batch]
            if number == len(batches):
                operations += [CommitOperationDelete(path_in_repo=path) for path in plan.deletions]
            failed = f"pushing to {summary.repo_id} failed in commit {number} of {len(batches)}"
            rerun = (
                f"{len(summary.uploaded)} of the {len(plan.uploads)} files to upload are on the Hub; "
                "rerun the same command to upload the rest"
            )
            with hub_errors(failed, token, rerun):
                api.create_commit(
                    summary.repo_id,
                    operations,
                    repo_type=REPO_TYPE,
                    revision=summary.revision,
                    commit_message=f"Upload mvcap export ({number}/{len(batches)})",
                )
            summary.uploaded += batch
            summary.bytes_uploaded += sum(sizes[path] for path in batch)
            summary.commits += 1
            bar.advance(len(batch))
    summary.deleted = list(plan.deletions)


@contextmanager
def hub_errors(doing: str, token: str, advice: str = "") -> Iterator[None]:
    """A refused request or a dropped connection in the block becomes one HubError line; the token
    is kept out of it whatever the error says."""
    try:
        yield
    except Exception as error:
        cause = _network_failure(error)
        if cause is None:
            raise
        message = f"{doing}: {_reason(cause)}" + (f"; {advice}" if advice else "")
        raise HubError(message.replace(token, "<token>")) from error


def _network_failure(error: BaseException) -> BaseException | None:
    """The HTTP error or connection failure behind `error` (huggingface_hub wraps failed LFS uploads
    in a RuntimeError), or None if it is something else: a bug keeps its traceback."""
    import httpx2

    seen = error
    while seen is not None:
        if isinstance(seen, (OSError, httpx2.HTTPError)):  # HfHubHTTPError is both
            return seen
        seen = seen.__cause__
    return None


def _reason(error: BaseException) -> str:
    """One line: the HTTP status, where (without the query: storage URLs carry signatures) and the
    server's message; or what happened to the connection."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return "the Hub refused the token (HTTP 401): set HF_TOKEN to a valid token or run `hf auth login`"
    if status is not None:
        server = _one_line(getattr(error, "server_message", None) or "")
        return f"HTTP {status} from {str(response.url).split('?')[0]}" + (f": {server}" if server else "")
    return f"{type(error).__name__}: {_one_line(str(error)) or 'connection failed'}"


def _one_line(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def human_bytes(count: int) -> str:
    units = ("B", "kB", "MB", "GB", "TB")
    value, index = float(count), 0
    while value >= 1000 and index < len(units) - 1:
        value, index = value / 1000, index + 1
    return f"{count} B" if index == 0 else f"{value:.1f} {units[index]}"
