"""The one typed config: bounds, defaults, fingerprint, and the UI form's schema."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest
from pydantic import ValidationError

from boneflow.config import RetrainConfig
from boneflow.duplicates.leakage import DEFAULT_MAX_DISTANCE
from boneflow.intake.decode import DEFAULT_MAX_BYTES
from boneflow.settings import DataSettings, GatePolicy, GroupingSettings, TrainSettings, pack_size_for

ROOT = Path(__file__).resolve().parents[2]


def test_every_field_has_a_description_and_default_for_the_ui_form():
    schema = RetrainConfig.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{name} has no description"
        assert "default" in prop, f"{name} has no default"


@pytest.mark.parametrize(
    "field,value",
    [("epochs", 0), ("image_size", 16), ("batch_size", 1), ("min_accuracy", 1.5), ("lr", 0.0), ("dispatch", "gpu")],
)
def test_out_of_bounds_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        RetrainConfig(**{field: value})
    assert field in str(info.value)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="epoch"):
        RetrainConfig(epoch=3)


def test_pack_size_is_eight_sevenths_of_the_crop():
    assert RetrainConfig().pack_size == 256
    assert RetrainConfig(image_size=64).pack_size == 73


def test_fingerprint_tracks_model_settings_only():
    base = RetrainConfig()
    assert base.fingerprint() == RetrainConfig().fingerprint()
    assert base.fingerprint() != RetrainConfig(epochs=3).fingerprint()
    # where results go and how training is dispatched do not change the model
    assert base.fingerprint() == RetrainConfig(store_url="s3://b/p", dispatch="deployment", force=True).fingerprint()


def test_empty_strings_from_the_ui_form_mean_not_set():
    assert RetrainConfig(data_dir="", weights_path="").data_dir is None


def test_train_settings_carry_the_training_fields():
    s = RetrainConfig(epochs=3, image_size=64, seed=7).train_settings()
    assert (s.epochs, s.image_size, s.seed) == (3, 64, 7)


# Today's value for the default config. A change here means every stored champion's config now
# counts as "different" (the skip rule retrains) and every stage cache misses: only a new or
# changed model field should move it, and then update this pin on purpose.
DEFAULT_FINGERPRINT = "7bcb5a1bede0e0b9"


def test_the_default_fingerprint_is_pinned():
    assert RetrainConfig().fingerprint() == DEFAULT_FINGERPRINT


def test_the_config_is_frozen_and_a_change_is_a_new_validated_config():
    config = RetrainConfig()
    with pytest.raises(TypeError, match="frozen: epochs cannot be assigned"):
        config.epochs = 3  # type: ignore[misc]
    changed = RetrainConfig.model_validate({**config.model_dump(), "epochs": 3})
    assert (config.epochs, changed.epochs) == (12, 3)
    with pytest.raises(ValidationError, match="epochs"):
        RetrainConfig.model_validate({**config.model_dump(), "epochs": 0})
    assert hash(config) == hash(RetrainConfig())  # frozen models hash by value


def test_defaults_come_from_the_core_settings():
    config = RetrainConfig()
    assert config.train_settings() == TrainSettings()
    assert config.gate_policy() == GatePolicy()
    assert config.data_settings() == DataSettings()
    assert config.leak_max_distance == DEFAULT_MAX_DISTANCE == GroupingSettings().near_max_distance
    assert config.max_bytes == DataSettings().max_bytes == DEFAULT_MAX_BYTES


def test_every_core_setting_is_a_config_field_and_reaches_its_view():
    """Each field of TrainSettings/DataSettings is a config field of the same name (so a field
    added to the core without one in the config fails here); set to a non-default value, it
    arrives in the view."""
    changed = {
        "image_size": 96, "epochs": 3, "batch_size": 8, "lr": 0.01, "weight_decay": 0.1, "label_smoothing": 0.0,
        "rotation_degrees": 5.0, "crop_min_area": 0.9, "class_weighted": False, "patience": 0, "seed": 7,
        "pretrained": False, "weights_path": "/w/resnet18.pth", "compile": True, "device": "cpu",
        "min_side": 32, "leak_max_distance": 10, "split_policy": "regroup", "workers": 2, "max_image_mb": 8, "folds": 3,
        "min_accuracy": 0.8, "min_recall": 0.85, "max_regression": 0.02, "min_gate_n": 50,
    }  # fmt: skip
    config = RetrainConfig(**changed)
    train, data, gate = config.train_settings(), config.data_settings(), config.gate_policy()
    for view in (train, data):
        for f in fields(view):
            assert f.name in RetrainConfig.model_fields, f"{type(view).__name__}.{f.name} has no config field"
            assert getattr(view, f.name) != getattr(type(view)(), f.name), f"{f.name} not varied in this test"
    assert train.weights_path == Path("/w/resnet18.pth") and train.to_dict()["weights_path"] == "/w/resnet18.pth"
    assert {k: v for k, v in train.to_dict().items() if k != "weights_path"} == {
        f.name: changed[f.name] for f in fields(train) if f.name != "weights_path"
    }
    assert asdict(data) == {f.name: changed[f.name] for f in fields(data)}
    assert (gate.min_accuracy, gate.min_recall, gate.max_regression, gate.min_n) == (0.8, 0.85, 0.02, 50)


def test_pack_size_and_leak_distance_are_one_constant_each():
    assert [pack_size_for(s) for s in (224, 64, 512)] == [256, 73, 585]
    assert RetrainConfig(image_size=512).pack_size == pack_size_for(512)


def test_importing_the_config_loads_no_numpy_or_torch():
    """`boneflow --help` imports the config; the core's settings it composes stay light."""
    code = "import sys, boneflow.config; print(sorted({'numpy', 'torch', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
