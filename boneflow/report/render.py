"""report.md and model_card.md, rendered as pure string functions from the run's dicts.

Plots are linked by relative name (`![Confusion matrix](confusion_matrix.png)`) so the
markdown renders next to the PNGs in `runs/<run_id>/`. Nothing here reads the environment, and
config values pass through `_redact` so a URL with user:password never lands in an artifact.
"""

from __future__ import annotations

import re

from boneflow.evaluate.split_names import shown_splits, split_words
from boneflow.intake.layout import CLASSES
from boneflow.report.summary import cell, contamination_line, honest_summary, markdown_table, policy_line, with_ci
from boneflow.store.keys import validate_name

_METRIC_COLUMNS = (
    ("specificity", "specificity"),
    ("precision_fractured", "precision (fractured)"),
    ("f1_fractured", "F1 (fractured)"),
    ("balanced_accuracy", "balanced acc."),
    ("auroc", "AUROC"),
    ("ece", "ECE"),
    ("ece_uncalibrated", "ECE before T"),
)
_DECISION_COLUMNS = {"recall_fractured": "recall (fractured)", "specificity": "specificity"}
_SECRET_FIELD = re.compile(r"(secret|password|passwd|token|credential|access_key)", re.I)
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")


def _redact(key: str, value):
    if _SECRET_FIELD.search(key):
        return "(redacted)"
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    return value


def metrics_table(splits: dict, split_policy: dict | None = None) -> str:
    """One row per split (each set of images once): radiographs and files, then accuracy,
    fractured recall and AUROC with their 95% intervals by radiograph, the other metrics."""
    present = [(k, t) for k, t in _METRIC_COLUMNS if any(k in m for m in splits.values())]
    header = ["split", "radiographs", "files", "accuracy [95% CI]", "recall (fractured) [95% CI]", "AUROC [95% CI]"]
    rows = []
    for s in shown_splits(splits, split_policy):
        m = splits[s]
        intervals = [with_ci(m, k) for k in ("accuracy", "recall_fractured", "auroc")]
        rows.append(
            [split_words(s, split_policy), m.get("n"), m.get("files"), *intervals, *(m.get(k) for k, _ in present)]
        )
    return markdown_table(header + [t for _, t in present], rows)


def _sub_table(splits: dict, split_policy: dict | None, key: str, unit: str, columns: dict[str, str]) -> str:
    """The figures each split keeps under `key`, where recorded: the `unit`s counted, accuracy
    with its interval, then `columns` ({metric: header})."""
    rows = [
        [split_words(s, split_policy), splits[s][key].get("n", splits[s].get("n")), with_ci(splits[s][key], "accuracy")]
        + [splits[s][key].get(k) for k in columns]
        for s in shown_splits(splits, split_policy)
        if isinstance(splits[s].get(key), dict)
    ]
    return markdown_table(["split", unit, "accuracy [95% CI]", *columns.values()], rows) if rows else ""


def _confusions(splits: dict, split_policy: dict | None = None) -> str:
    rows = []
    for split in shown_splits(splits, split_policy):
        conf = splits[split].get("confusion")
        if conf and len(conf) == 2:
            (tn, fp), (fn, tp) = conf
            rows.append([split_words(split, split_policy), tn, fp, fn, tp])
    return markdown_table(["split (radiographs)", "TN", "FP", "FN (missed fractures)", "TP"], rows) if rows else ""


def _gallery_section(gallery: dict | None) -> list[str]:
    """The most confidently wrong radiographs: what a user opens after a refusal."""
    if not gallery:
        return []
    rows, split_name = gallery.get("rows") or [], gallery.get("split_name", "judged split")
    if not rows:
        return ["## Most confident errors", f"_No radiograph of the {split_name} is wrong._"]
    validate_name(gallery["image"])
    table = markdown_table(
        ["#", "radiograph (group)", "true label", "P(fractured)", "called", "files", "example file"],
        [
            [i + 1, r["group"], r["label"], r["probability"], r["predicted"], r["files"], r["path"]]
            for i, r in enumerate(rows)
        ],
    )
    return [
        "## Most confident errors",
        f"The {len(rows)} radiographs of the {split_name} the model gets wrong "
        "with the most confidence (each: the image, its Grad-CAM, P(fractured) by radiograph).",
        f"![Most confident errors]({gallery['image'].replace(' ', '%20')})",
        table,
    ]


def _summary_table(summary: dict) -> str:
    """A generic two-column table for the cleaning / leakage summaries (their exact fields
    belong to the data part): scalars as they are, small dicts inline, lists by length."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}: {cell(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
            value = inner or f"{len(value)} entries"
        elif isinstance(value, (list, tuple)):
            value = f"{len(value)} item(s)"
        rows.append([key, value])
    return markdown_table(["", "value"], rows) if rows else "_(none reported)_"


def _plot_links(plots: dict[str, str]) -> str:
    for name in plots.values():
        validate_name(name)  # relative name inside the run folder; never a path or URL
    return "\n\n".join(f"### {title}\n\n![{title}]({name.replace(' ', '%20')})" for title, name in plots.items())


def _dataset_lines(dataset: dict) -> list[str]:
    return [f"- {k.replace('_', ' ')}: `{cell(v)}`" for k, v in dataset.items() if not isinstance(v, (dict, list))]


def render_report(
    *,
    run_id: str,
    metrics: dict,
    gate: dict,
    dataset: dict,
    cleaning_summary: dict,
    leakage_summary: dict,
    plots: dict[str, str],
    history: list[dict] | None = None,
    gallery: dict | None = None,
) -> str:
    """report.md: the gate decision, the most confidently wrong radiographs and the
    honest-evaluation summary (report/summary.py) first, then the tables and plots."""
    splits = metrics.get("splits", {})
    split_policy = metrics.get("split_policy")
    threshold = (metrics.get("operating_point") or {}).get("threshold")
    parts = [
        f"# boneflow run {run_id}",
        *_gate_lines(gate),
        *_gallery_section(gallery),
        "## Honest evaluation",
        honest_summary(metrics, gate),
        *_metrics_sections(splits, split_policy, threshold),
        "## Dataset",
        "\n".join(_dataset_lines(dataset)) or "- (no dataset version recorded)",
        "## Cleaning",
        _summary_table(cleaning_summary),
        "## Leakage audit",
        _summary_table(leakage_summary),
    ]
    if history:
        known = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "img_per_s")
        cols = [c for c in known if any(c in h for h in history)]
        parts += ["## Training", markdown_table(cols, [[h.get(c) for c in cols] for h in history])]
    if plots:
        parts += ["## Plots", _plot_links(plots)]
    return "\n\n".join(parts) + "\n"


def _metrics_sections(splits: dict, split_policy: dict | None, threshold: float | None) -> list[str]:
    """Metrics by radiograph (with the radiographs left out), at 0.5, confusion counts, by file."""
    parts = [
        "## Metrics by radiograph",
        "Positive class: `fractured`. The unit is the radiograph: a duplicate group (a file with "
        "its byte copies, re-encodes and turned re-saves), scored by the mean of its files' "
        "calibrated probabilities; groups whose files carry both labels are left out. 95% "
        "intervals by radiograph (Wilson; AUROC: bootstrap)"
        + (f", at the operating threshold {threshold:.3f} (chosen on validation)" if threshold is not None else "")
        + ". ECE after / before the temperature.",
        metrics_table(splits, split_policy),
    ]
    mixed = sorted({g for s in shown_splits(splits, split_policy) for g in splits[s].get("mixed_label_groups") or []})
    if mixed:
        parts.append(
            f"Left out of evaluation, their files carry both labels: {len(mixed)} radiograph(s) "
            + ", ".join(f"`{g}`" for g in mixed[:20])
            + (" …" if len(mixed) > 20 else "")
            + "."
        )
    # At 0.5 (the argmax decision): the threshold-dependent metrics, where they were recorded.
    at_half = _sub_table(splits, split_policy, "at_0.5", "radiographs", _DECISION_COLUMNS)
    if at_half and threshold is not None:
        parts += ["### At threshold 0.5", at_half]
    confusion = _confusions(splits, split_policy)
    if confusion:
        parts += ["### Confusion counts (operating threshold)", confusion]
    # By file: every copy counted (what file-level tools report).
    by_file = _sub_table(splits, split_policy, "by_file", "files", {**_DECISION_COLUMNS, "auroc": "AUROC"})
    if by_file:
        parts += [
            "### By file (secondary)",
            "Every file counted, copies included: a radiograph with many copies weighs more here.",
            by_file,
        ]
    return parts


def _gate_lines(gate: dict) -> list[str]:
    """The verdict, its reasons and the policy it was judged by."""
    if gate.get("passed"):
        verdict = "PASSED — promoted to champion"
    elif gate.get("refused"):
        verdict = "REFUSED — too few radiographs to judge, not promoted"
    else:
        verdict = "REJECTED — not promoted"
    policy = gate.get("policy", {})
    return [
        f"**Gate: {verdict}**",
        "\n".join(f"- {r}" for r in gate.get("reasons", [])) or "- (no reasons recorded)",
        (
            f"Policy: split `{policy.get('split', 'test_clean')}` with at least {policy.get('min_n', 0)} radiographs, "
            f"accuracy ≥ {cell(policy.get('min_accuracy'))}, fractured recall ≥ {cell(policy.get('min_recall'))}, "
            f"regression ≤ {cell(policy.get('max_regression'))}; compared with champion "
            f"`{gate.get('champion_run_id') or 'none'}`."
        ),
    ]


def _limitations_text(leak: dict) -> str:
    # the leakage report's counts hold `pairs` (duplicates/leakage.py)
    cross = next((leak[k] for k in ("cross_split_pairs", "pairs") if isinstance(leak.get(k), int)), None)
    cross_text = (
        f"{cross} near-duplicate pair(s) across train/val/test were found"
        if cross is not None
        else "near-duplicate images occur across train/val/test in this dataset"
    )
    return "\n".join(
        [
            f"- Cross-split copies: {cross_text}; scores on the official test split are "
            "therefore optimistic. Prefer the leak-free test figures.",
            "- One public dataset from a few sources, mixed body regions and mixed image formats; "
            "performance on other hospitals, devices or populations is unknown.",
            "- Labels are image-level and may contain errors; no radiologist re-read.",
            "- Probabilities may be miscalibrated (see ECE); do not read them as clinical risk.",
            "- Small test splits give wide intervals: compare the intervals, not the point values.",
        ]
    )


def render_model_card(
    *,
    run_id: str,
    metrics: dict,
    dataset: dict,
    config: dict,
    model_meta: dict,
    leakage_summary: dict,
    gate: dict,
    code: dict,
) -> str:
    """model_card.md: intended use with a not-for-diagnosis warning, data, evaluation, metrics,
    limitations (including cross-split copies) and the code version (`code`: code_version())."""
    splits = metrics.get("splits", {})
    classes = model_meta.get("classes", list(CLASSES))
    commit = code.get("git_commit")
    config_rows = [[k, _redact(k, v)] for k, v in sorted(config.items()) if not isinstance(v, (dict, list))]
    parts = [
        f"# Model card — boneflow run {run_id}",
        "> **Not for diagnosis.** This model is a research and engineering demonstration. It has "
        "not been clinically validated or cleared by any regulator, and must not be used to "
        "diagnose, triage or rule out fractures in patients. A qualified clinician must read "
        "every radiograph.",
        "## Model",
        f"- architecture: {model_meta.get('architecture', 'ResNet18, 1-channel (greyscale) input')}",
        f"- classes: {', '.join(map(str, classes))} (positive class: fractured)",
        f"- input: greyscale, padded to square, resized; crop side "
        f"{config.get('image_size', model_meta.get('image_size', '?'))} px",
        "- weights: `model.safetensors` (no pickle); `model.json` holds architecture, classes, "
        "preprocessing and config",
        "## Intended use",
        "Binary classification of single X-ray images as *fractured* / *not fractured*, to study "
        "retraining pipelines and model monitoring. Out of scope: any clinical decision, "
        "localising the fracture, images that are not plain radiographs.",
        "## Data",
        "\n".join(_dataset_lines(dataset)) or "- (no dataset version recorded)",
        policy_line(metrics.get("split_policy")),
        contamination_line(metrics.get("contamination")),
        "Unreadable, truncated and too-small files were excluded before training (see `cleaning_report.json`).",
        "## How it was evaluated",
        "Accuracy, fractured recall (sensitivity), specificity, precision, F1, AUROC and expected "
        "calibration error by radiograph (a duplicate group, scored by the mean of its files' "
        "probabilities) on the validation split, the test split(s) and the judged split (test "
        "radiographs with no copy in train or val: exact, near or rotated), with 95% intervals by "
        "radiograph. The decision threshold is the highest whose validation fractured recall by "
        "radiograph reaches the target, and a temperature fitted on validation calibrates the "
        f"probabilities; both are stored in `model.json` (threshold {cell(model_meta.get('threshold', 0.5))}, "
        f"temperature {cell(model_meta.get('temperature', 1.0))}) and used by serving. The gate refuses "
        "to judge a split with too few radiographs, and compares with the current champion re-scored on "
        "the same radiographs (paired: McNemar's exact test and Newcombe's interval of the difference).",
        "## Metrics by radiograph",
        metrics_table(splits, metrics.get("split_policy")),
    ]
    if gate:
        parts.append(f"Gate: {'passed' if gate.get('passed') else 'rejected'} — " + "; ".join(gate.get("reasons", [])))
    parts += [
        "## Limitations",
        _limitations_text(leakage_summary),
        "## Training configuration",
        markdown_table(["setting", "value"], config_rows) if config_rows else "_(not recorded)_",
        "## Code version",
        f"- boneflow {code['package_version']}"
        + (f", git commit `{commit}`" if commit else " (git commit not available)"),
    ]
    return "\n\n".join(parts) + "\n"
