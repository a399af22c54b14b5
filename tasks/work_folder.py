"""The last stage of a finished run: empty its local work folder `$BONEFLOW_WORK_DIR/runs/<run_id>/`.

Once the run is published (or skipped) all it holds is in the store; a failed run keeps its
folder for a Retry on the same machine (README, "Run it locally (no server)").
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from boneflow.registry.gc import remove_run_folder
from boneflow.settings import work_root
from tasks.runtime import stage


@stage(cache_policy=NO_CACHE)
def empty_work_folder(run_id: str, members: list[str] | None = None) -> int:
    """Empty the run's folder and those of its cross-fitting members (trained here in turn);
    returns the bytes freed."""
    freed = 0
    for trained_in in dict.fromkeys([run_id, *(members or [])]):
        folder = work_root() / "runs" / trained_in
        if folder.is_dir():
            freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
            remove_run_folder(work_root(), folder)
    get_run_logger().info("emptied the local work folder of run %s (%.1f MB)", run_id, freed / 1e6)
    return freed
