"""The render stage: plan each object's views, render them in Blender workers, commit or ledger.

Unit of work: one object. Its views are rendered into a staging folder beside the final one;
`views.json` is written last and the folder is renamed into place (`commit.py`), so an object is
either completely rendered or absent. Each manifest carries the fingerprint of the settings that
shaped its pixels (`fingerprint.py`); the shared flow in `mvcap_build.pipeline.stage` skips,
redoes or refuses units by it. Commits (PNG compression included) run in host threads while the
workers render the next objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mvcap_build.dataset import DatasetRoot, ObjectRecord, write_objects_table
from mvcap_build.dataset.atomic import make_staging_dir, remove_stale_staging
from mvcap_build.dataset.keys import in_shard
from mvcap_build.pipeline.stage import Outcome, Plan, Unit, ViewsStage
from mvcap_build.render.commit import commit_render
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.fingerprint import render_fingerprint
from mvcap_build.render.jobs import kernel_cache_env, render_job
from mvcap_build.render.protocol import RenderJob, Reply
from mvcap_build.render.sources import list_objects, listing_notes, make_fetcher, source_name
from mvcap_build.render.sources.fetch import AssetUnavailable, prefetched
from mvcap_build.render.workers import run_jobs


class RenderStage(ViewsStage):
    name = "render"
    verb = "rendered"
    nothing_to_do = "the source lists no objects (in this shard)"

    config: RenderConfig

    def __init__(self, config: RenderConfig, options=None) -> None:
        super().__init__(config, options)
        self._objects: list[ObjectRecord] | None = None

    def objects(self) -> list[ObjectRecord]:
        if self._objects is None:
            self._objects = list_objects(self.config.source)
        return self._objects

    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterator[Unit]:
        for obj in self.objects():
            if in_shard(obj.key, shard, num_shards):
                yield Unit(obj.key, render_fingerprint(obj, self.config), obj)

    def plan(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Plan:
        plan = super().plan(root, shard, num_shards)
        mine = [obj for obj in self.objects() if in_shard(obj.key, shard, num_shards)]
        plan.summary.notes.extend(listing_notes(self.config.source, mine))
        return plan

    def prepare(self, root: DatasetRoot) -> None:
        write_objects_table(root, source_name(self.config.source), self.objects())

    def work(
        self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]
    ) -> None:
        fetcher = make_fetcher(self.config.source)
        try:
            self._render(root, todo, shard, num_shards, report, fetcher)
        finally:
            if fetcher is not None:
                fetcher.close()

    def _assets(self, todo: list[Unit], fetcher) -> Iterator[tuple[Unit, Path | None, AssetUnavailable | None]]:
        """Each unit with its local file, fetched ahead of the workers where the source needs it."""
        if fetcher is None:
            return ((unit, None, None) for unit in todo)
        source = self.config.source
        fetch = lambda unit: fetcher.fetch(unit.payload.asset)  # noqa: E731
        return prefetched(todo, fetch, workers=source.download_workers, window=source.prefetch)

    def _render(
        self,
        root: DatasetRoot,
        todo: list[Unit],
        shard: int,
        num_shards: int,
        report: Callable[[Outcome], None],
        fetcher,
    ) -> None:
        by_key = {unit.key: unit for unit in todo}
        workers = min(self.config.workers, max(1, len(todo)))
        reporting = threading.Lock()  # commits finish in several threads; the ledger and summary take one at a time

        claims = {}  # key -> Claim, held from the staging folder's creation to the commit
        stop = threading.Event()  # a commit hit a problem that every next object would hit too (a full disk)

        def jobs():  # lazy: a staging folder exists only for the objects being rendered now
            for unit, local_file, unavailable in self._assets(todo, fetcher):
                if stop.is_set():
                    return
                claim = self.claim(root, unit)
                if claim is None or unavailable is not None:
                    if claim is not None:
                        claim.release()
                    if fetcher is not None and unavailable is None:
                        fetcher.release(unit.payload.asset)
                    with reporting:
                        report(
                            Outcome(unit.key, elsewhere=True)
                            if claim is None
                            else Outcome(unit.key, unavailable.reason, unavailable.detail)
                        )
                    continue
                claims[unit.key] = claim
                final = root.view_dir(unit.key)
                remove_stale_staging(final)
                yield render_job(unit.payload, self.config, make_staging_dir(final), local_file)

        def commit(job: RenderJob, reply: Reply) -> None:
            unit = by_key[job.key]
            try:
                failure = commit_render(root, self.config, unit.key, unit.fingerprint, job, reply)
            except BaseException:
                stop.set()
                raise
            finally:
                claims.pop(unit.key).release()
                if fetcher is not None:
                    fetcher.release(unit.payload.asset)  # the disk budget: committed or failed, it is done
            with reporting:
                report(Outcome(unit.key, items=len(job.views)) if failure is None else Outcome(unit.key, *failure))

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="commit") as committer:
            pending = []

            def on_result(job: RenderJob, reply: Reply) -> None:
                pending.append(committer.submit(commit, job, reply))

            run_jobs(
                jobs(),
                num_workers=workers,
                log_dir=root.logs(self.name, shard, num_shards),
                timeout_s=self.config.timeout_s,
                recycle_after=self.config.recycle_after,
                python=self.config.python,
                env=kernel_cache_env(self.config.kernel_cache),
                on_result=on_result,
            )
            try:
                for future in pending:
                    future.result()  # a full disk (one line) or a bug (its traceback) surfaces here
            finally:
                for claim in list(claims.values()):
                    claim.release()
