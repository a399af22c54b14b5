"""How stage results are persisted (so the UI's Retry reuses finished stages): JSON, with the
stage contracts stored by name.

Prefect's own decoder imports whatever class a stored result names ({"__class__": "<import
path>", ...}); here a contract is written as {"__contract__": "TrainSummary", "data": {...}} and
only the classes in CONTRACTS are ever rebuilt. Anything else (strings, numbers, plain dicts, a
failed stage's exception) goes through Prefect's own encoder.
"""

from __future__ import annotations

from typing import Any

from prefect.serializers import JSONSerializer, prefect_json_object_decoder, prefect_json_object_encoder

from boneflow.contracts import Acquired, ChampionRef, Contract, Predictions, RunFiles, Scores, TrainSummary
from boneflow.gate.decision import GateDecision

CONTRACTS: dict[str, type[Contract]] = {
    cls.__name__: cls for cls in (Acquired, ChampionRef, TrainSummary, Predictions, Scores, GateDecision, RunFiles)
}
TAG = "__contract__"


def encode(value: Any) -> Any:
    if isinstance(value, Contract):
        name = type(value).__name__
        if CONTRACTS.get(name) is not type(value):
            raise TypeError(f"{name} is not a registered stage contract (add it to tasks/results.py CONTRACTS)")
        return {TAG: name, "data": value.model_dump(mode="json")}
    return prefect_json_object_encoder(value)


def decode(value: dict) -> Any:
    if TAG in value:
        cls = CONTRACTS.get(value[TAG])
        if cls is None:
            raise ValueError(f"stored result names an unknown stage contract {value[TAG]!r}")
        return cls.model_validate(value["data"])
    return prefect_json_object_decoder(value)


# Every task and flow persists with this serializer (tests/flows/test_retries_and_results.py).
RESULTS = JSONSerializer(object_encoder="tasks.results.encode", object_decoder="tasks.results.decode")
