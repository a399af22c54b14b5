"""The last stage of a finished run: empty its local work folder.

A run decodes images, keeps its packed-dataset copy and writes checkpoints under
`$BONEFLOW_WORK_DIR/runs/<run_id>/` (tasks/runtime.py); once it is published (or skipped), all
of that is in the store, so nothing stays behind on the worker. A failed run keeps its folder
for a Retry on the same machine (`boneflow gc` removes it later).
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from tasks.runtime import empty_run_work_dir, stage


@stage(cache_policy=NO_CACHE)
def empty_work_folder(run_id: str, members: list[str] | None = None) -> int:
    """Empty the run's folder and those of its cross-fitting members (trained here in turn)."""
    freed = 0
    for trained_in in dict.fromkeys([run_id, *(members or [])]):
        freed += empty_run_work_dir(trained_in)
    get_run_logger().info("emptied the local work folder of run %s (%.1f MB)", run_id, freed / 1e6)
    return freed
