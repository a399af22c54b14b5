"""What the UI form (or a hostile caller) can put into RetrainConfig: credentials in URLs are
refused without being echoed, seed and device are bounded, the file size limit is a field."""

from __future__ import annotations

import json
import re

import pytest
import torch
from pydantic import ValidationError

from boneflow.config import MAX_SEED, NO_USERINFO_PATTERN, RetrainConfig

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY"


@pytest.mark.parametrize(
    "field,value",
    [
        ("store_url", f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix"),
        ("store_url", f"s3://AKIAEXAMPLE:{SECRET}@bucket"),
        ("store_url", f"file://admin:{SECRET}@host/srv/store"),
        ("store_url", f"https://{SECRET}@minio.local/bucket"),
        ("store_url", f"//admin:{SECRET}@host/share"),
        ("data_dir", f"admin:{SECRET}@host:/data"),
    ],
)
def test_user_info_in_a_location_is_refused_without_echoing_it(field, value):
    with pytest.raises(ValidationError) as info:
        RetrainConfig(**{field: value})
    text = str(info.value) + json.dumps(info.value.errors(include_input=False), default=str)
    assert SECRET not in text and "AKIAEXAMPLE" not in text
    assert f"{field} carries user-info" in text and "AWS_ACCESS_KEY_ID" in text
    config = RetrainConfig()
    with pytest.raises(ValidationError) as info:  # a changed copy is validated the same way
        RetrainConfig.model_validate({**config.model_dump(), field: value})
    assert SECRET not in str(info.value) and f"{field} carries user-info" in str(info.value)
    with pytest.raises(TypeError, match="frozen") as frozen:  # no assignment, and no echo either
        setattr(config, field, value)
    assert SECRET not in str(frozen.value) and "AKIAEXAMPLE" not in str(frozen.value)


@pytest.mark.parametrize(
    "value",
    [
        "boneflow-store",
        "/srv/store",
        "file:///srv/a@b/store",
        "s3://bucket",
        "s3://bucket/team@x/prefix",
        "./rel@x",
        "C:/store",
    ],
)
def test_ordinary_locations_are_accepted(value):
    assert RetrainConfig(store_url=value, data_dir=value).store_url == value


def test_the_ui_schema_carries_the_same_rule():
    schema = RetrainConfig.model_json_schema()["properties"]
    for field in ("store_url", "data_dir"):
        assert schema[field]["pattern"] == NO_USERINFO_PATTERN
    assert re.search(NO_USERINFO_PATTERN, f"s3://k:{SECRET}@b/p") is None  # what jsonschema runs


def test_model_json_never_holds_user_info():
    dumped = json.dumps(RetrainConfig(store_url="s3://bucket/p").model_dump())
    assert "@" not in dumped


def test_seed_is_bounded_to_what_training_can_seed_with():
    assert RetrainConfig(seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(ValidationError, match="seed"):
        RetrainConfig(seed=MAX_SEED + 1)
    with pytest.raises(ValidationError, match="seed"):
        RetrainConfig(seed=-1)
    # the largest seed still works in both places fit() uses it
    torch.manual_seed(MAX_SEED)
    torch.Generator().manual_seed(MAX_SEED * 1_000_003 + 500)
    assert RetrainConfig.model_json_schema()["properties"]["seed"]["maximum"] == MAX_SEED


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names_torch_knows_are_accepted(device):
    assert RetrainConfig(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cpu; rm -rf /", "", "CUDA", "tpu"])
def test_other_device_names_are_refused(device):
    with pytest.raises(ValidationError, match="device"):
        RetrainConfig(device=device)


def test_file_size_limit_is_a_bounded_field():
    assert RetrainConfig().max_bytes == 64 * 2**20
    assert RetrainConfig(max_image_mb=2).max_bytes == 2 * 2**20
    for bad in (0, 1025):
        with pytest.raises(ValidationError, match="max_image_mb"):
            RetrainConfig(max_image_mb=bad)
