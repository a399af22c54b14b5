"""`boneflow run`'s flags and the README's config table are generated from RetrainConfig: every
field appears in both, with its default, so neither can drift from the model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer
from typer.testing import CliRunner

from boneflow.cli.options import flag_name
from boneflow.config import RetrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _app():
    from flows.cli import app

    return app


def _run_command():
    return typer.main.get_command(_app()).commands["run"]


def _config_table_module():
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_has_a_flag_in_run_help():
    result = CliRunner().invoke(
        _app(), ["run", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"}, terminal_width=400
    )
    assert result.exit_code == 0, result.output
    missing = [name for name in RetrainConfig.model_fields if flag_name(name) not in result.output]
    assert missing == [], f"fields without a flag in `boneflow run --help`: {missing}"
    for name, info in RetrainConfig.model_fields.items():
        if info.default is not None and not isinstance(info.default, bool):
            assert f"Default: {info.default}." in result.output, name


def test_flags_keep_their_kinds_and_older_names():
    options = {opt: param for param in _run_command().params for opt in param.opts + param.secondary_opts}
    assert "--store" in options and "--store-url" not in options
    assert {"--pretrained", "--no-pretrained", "--class-weighted", "--no-class-weighted", "--force"} <= set(options)
    assert {"--verbose", "-v", "--data-dir"} <= set(options)
    result = CliRunner().invoke(_app(), ["run", "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert "auto|official|regroup" in result.output and "local|deployment" in result.output


def test_a_bad_value_is_refused_naming_its_flag(tmp_path):
    result = CliRunner().invoke(
        _app(), ["run", "--data-dir", str(tmp_path), "--lr", "5", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2
    assert "--lr" in result.output and "less than or equal to 1" in result.output
    result = CliRunner().invoke(_app(), ["run", "--split-policy", "sideways"])
    assert result.exit_code == 2 and "sideways" in result.output


def test_readme_config_table_lists_exactly_the_fields_with_their_defaults():
    readme = (ROOT / "README.md").read_text()
    generated = _config_table_module().config_table()
    assert generated in readme, "README's Configuration table is stale: paste `python scripts/config_table.py` over it"
    rows = [line for line in generated.splitlines()[2:]]
    assert [row.split("`")[1] for row in rows] == list(RetrainConfig.model_fields)
    for row, (name, info) in zip(rows, RetrainConfig.model_fields.items()):
        assert f"| `{info.default}` |" in row, name
