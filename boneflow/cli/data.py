"""CLI commands for data: audit, demo-data, bench prep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from boneflow.settings import LEAK_MAX_DISTANCE, DataSettings, GatePolicy, TrainSettings, pack_size_for

# `boneflow run`'s split settings, for the splits.json `audit` writes beside its reports
_SplitPolicyOption = Annotated[str, typer.Option("--split-policy", help="auto | official | regroup, as `run`'s.")]
_FoldsOption = Annotated[int, typer.Option(help="Cross-fitting folds, as `boneflow run`'s.", min=1, max=10)]


def audit(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Local dataset copy: any folder above train/val/test.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for cleaning_report.json and leakage_report.json.")],
    workers: Annotated[int, typer.Option(help="Decoding processes; 0 = one per CPU core.", min=0)] = 0,
    min_side: Annotated[
        int, typer.Option(help="Exclude images whose shorter side is below this (px).", min=1)
    ] = DataSettings.min_side,
    max_distance: Annotated[
        int,
        typer.Option(
            help="Largest phash Hamming distance (of 256 bits) counted as a cross-split copy.", min=0, max=256
        ),
    ] = LEAK_MAX_DISTANCE,
    pack_size: Annotated[
        int, typer.Option(help="Side of the decoded square kept for hashing (px).", min=32)
    ] = pack_size_for(TrainSettings.image_size),
    split_policy: _SplitPolicyOption = DataSettings.split_policy,
    folds: _FoldsOption = DataSettings.folds,
    min_gate_n: Annotated[int, typer.Option("--min-gate-n", help="As `boneflow run`'s.", min=0)] = GatePolicy.min_n,
    seed: Annotated[int, typer.Option(help="As `boneflow run`'s.", min=0)] = TrainSettings.seed,
) -> None:
    """Validate a dataset and audit it for cross-split leakage (no training); writes both reports
    and the splits.json a run with these settings would use (split, group and fold per file) to --out."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from boneflow.duplicates.leakage import audit_leakage
    from boneflow.intake.acquire import acquire
    from boneflow.intake.validate import validate_dataset
    from boneflow.splits.plan import plan_splits

    acquired = acquire(data_dir=data_dir, kaggle_handle="", retries=1)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("decoding", total=None)
        validated = validate_dataset(
            acquired.root,
            workdir=out,
            pack_size=pack_size,
            min_side=min_side,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    leak = audit_leakage(validated, max_distance=max_distance)
    (out / "pixels.npy").unlink(missing_ok=True)  # audit only: the decoded pixels are not kept
    assert leak.groups is not None  # audit_leakage always groups in this process
    splits = plan_splits(validated, leak.groups, policy=split_policy, min_gate_n=min_gate_n, seed=seed, folds=folds)
    plan = splits.to_json()  # the splits.json a run with these settings would use
    (out / "splits.json").write_text(json.dumps(plan, indent=1))
    Console().print(_audit_table(acquired, validated, leak, max_distance))
    written = ", ".join(str(out / n) for n in ("cleaning_report.json", "leakage_report.json", "splits.json"))
    Console().print(
        f"split policy {plan['policy']} ({plan['reason']}); folds {plan['folds']}: {plan['fold_balance']}\n"
        f"reports: {written}",
        highlight=False,
    )


def _audit_table(acquired, validated, leak, max_distance: int):
    """The audit's summary: what was kept and excluded, and the copies across splits."""
    from rich.table import Table

    counts = validated.report["counts"]
    table = Table(title=f"boneflow audit: {acquired.root}", title_justify="left")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("files / images", f"{validated.report['file_count']} / {counts['images']}")
    table.add_row("kept", str(counts["kept"]))
    for reason, k in counts["by_reason"].items():
        if k:
            table.add_row(f"excluded: {reason}", str(k))
    for key in ("empty_folders", "stray_files", "stray_folders"):
        if validated.report[key]:
            table.add_row(key.replace("_", " "), str(len(validated.report[key])))
    lc = leak.report["counts"]
    table.add_row("distinct files / duplicate groups", f"{lc['distinct_files']} / {lc['groups']}")
    table.add_row(f"cross-split copies (pairs: phash d<={max_distance}, exact, turned)", str(lc["pairs"]))
    copies = leak.report["contamination"]["copies_in_train_val"]
    table.add_row(
        "official test copies of train/val",
        f"{copies['any']} (exact {copies['exact']}, near {copies['near']}, rotated {copies['rotated']})",
    )
    table.add_row("test leaking / clean", f"{lc['test_leaking']} / {lc['test_clean']}")
    table.add_row("fingerprint", acquired.version.fingerprint[:16])
    return table


MAX_DEMO_IMAGES = 100_000  # ~1 GB of 80-400 px JPEGs; a typo like --n 2500000 would fill a disk


def demo_data(
    path: Annotated[Path, typer.Argument(help="Folder to write (the Kaggle layout goes below it).")],
    n: Annotated[
        int,
        typer.Option(
            "--n",
            help="Distinct synthetic radiographs (defects and copies come on top).",
            min=20,
            max=MAX_DEMO_IMAGES,
        ),
    ] = 2500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    full_size: Annotated[bool, typer.Option(help="256-1100 px RGB JPEGs (benchmarks) instead of 80-400 px.")] = False,
    families: Annotated[
        int,
        typer.Option(
            help="Kaggle-style families of rotated copies (N-rotated1.jpg ...) across splits, plus as many "
            "byte-identical copies (N (1).jpg) and as many families of large-angle turned copies "
            "(N-turned1.jpg: 45-180 degrees, octagonal frame, some mirrored); at most one per 40 images; 0 = none.",
            min=0,
        ),
    ] = 8,
) -> None:
    """Write a synthetic X-ray-like dataset with planted defects and cross-split copies."""
    from boneflow.demo.dataset import dataset_root, write_demo_dataset

    planted = write_demo_dataset(path, n=n, seed=seed, full_size=full_size, families=families)
    kinds = [d["kind"] for d in planted["duplicates"]]
    typer.echo(
        f"wrote {n} radiographs + {len(planted['defects'])} planted encodings/defects + "
        f"{len(planted['copies'])} cross-split copies + {kinds.count('exact')} byte-identical and "
        f"{kinds.count('rotated')} rotated and {kinds.count('turned')} large-angle turned copies under "
        f"{dataset_root(path)}; what was planted: {Path(path) / 'planted.json'}"
    )


def bench_prep(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Local dataset copy: any folder above train/val/test.")],
    limit: Annotated[int, typer.Option(help="Use at most this many images (0 = all).", min=0)] = 0,
    workers: Annotated[int, typer.Option(help="Our decoding processes; 0 = one per CPU core.", min=0)] = 0,
    pack_size: Annotated[int, typer.Option(help="Stored side of packed images (px).", min=32)] = 256,
) -> None:
    """Time ours (validate + audit + pack) vs the seed-style path (verify, then ImageFolder-style decode)."""
    from boneflow.bench.prep import run_prep_bench

    result = run_prep_bench(data_dir, limit=limit, workers=workers, pack_size=pack_size)
    typer.echo(json.dumps(result, indent=2))
