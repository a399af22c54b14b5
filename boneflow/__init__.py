"""boneflow core: data, model, training, evaluation, gate, store, report, CLI.

This package never imports Prefect (tests/unit/test_core_has_no_prefect.py checks it), so it
runs from a plain script, the GPU benchmark, the CLI and the app alike."""

__version__ = "0.1.0"
