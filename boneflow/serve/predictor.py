"""Predict with a published model: the champion, or a given run. The image path is the
evaluation path, call for call (`load_xray` at pack_size, then evaluation's crop and
normalisation from the run's model.json), so a served prediction equals the evaluated one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boneflow.errors import BoneflowError
from boneflow.evaluate.calibration import OperatingPoint
from boneflow.evaluate.gradcam import GradCAM
from boneflow.evaluate.predict import predict_proba
from boneflow.intake.decode import load_xray
from boneflow.intake.layout import POSITIVE
from boneflow.registry.publish import read_champion
from boneflow.serve.errors import ModelNotFoundError, NoChampionError
from boneflow.serve.model_cache import MODEL_JSON, WEIGHTS, cached_model, run_model_sha256
from boneflow.serve.model_meta import check_model_meta, read_model_meta
from boneflow.store import open_store
from boneflow.store.errors import InvalidKeyError
from boneflow.store.keys import validate_run_id, validate_sha256
from boneflow.train.augment import EvalPreset
from boneflow.train.device import autocast, fast_layout, use_bf16
from boneflow.train.ensemble import FoldEnsemble


def champion_model(champion: dict, store_url: str) -> tuple[str, str]:
    """(run_id, model_sha256) from champion.json, each checked against its exact pattern (they
    become cache paths), or a clear error naming the field."""
    if not champion.get("run_id") or not champion.get("model_sha256"):
        raise ModelNotFoundError(
            f"champion.json in {store_url} lacks run_id or model_sha256; re-promote a run (boneflow run) to rewrite it"
        )
    try:
        validate_run_id(champion["run_id"])
        validate_sha256(champion["model_sha256"], what="model_sha256")
    except InvalidKeyError as err:
        raise ModelNotFoundError(
            f"champion.json in {store_url} is damaged or was tampered with: "
            f"{err} Re-promote a run (boneflow run) to rewrite it"
        ) from None
    return champion["run_id"], champion["model_sha256"]


@dataclass(frozen=True)
class Explanation:
    label: str
    prob_fractured: float
    run_id: str
    image: np.ndarray  # uint8 [crop, crop]: exactly the pixels the network saw (denormalised)
    heatmap: np.ndarray  # float [crop, crop] in 0..1, Grad-CAM for the "fractured" score


class Predictor:
    """A loaded model plus its preprocessing. `predict(image)` → {label, prob_fractured, run_id}."""

    def __init__(self, *, model: torch.nn.Module, meta: dict[str, Any], run_id: str, model_sha256: str) -> None:
        check_model_meta(meta, source=f"model.json of run {run_id}")
        prep = meta["preprocessing"]
        self.model = model.eval()
        for p in self.model.parameters():  # inference only; Grad-CAM needs no weight grads
            p.requires_grad_(False)
        self.run_id = run_id
        self.model_sha256 = model_sha256
        self.classes: list[str] = list(meta["classes"])
        self.positive_index = self.classes.index(POSITIVE)
        self.pack_size = int(prep["pack_size"])
        self.image_size = int(prep["image_size"])
        self.mean = float(np.asarray(prep["mean"]).reshape(-1)[0])
        self.std = float(np.asarray(prep["std"]).reshape(-1)[0])
        self.preset = EvalPreset(crop_size=self.image_size, mean=prep["mean"], std=prep["std"])
        # the temperature and decision threshold chosen on validation (0.5 and 1 for older runs)
        self.operating_point = OperatingPoint.from_meta(meta, where=f"model.json of run {run_id}")
        self._gradcams: list[GradCAM] = []

    @classmethod
    def from_store(cls, store_url: str, run_id: str | None = None, *, cache_dir: Path | None = None) -> Predictor:
        """Load the champion (or `run_id`) from the store; weights are sha256-checked and cached."""
        store = open_store(store_url)
        if run_id is not None:
            return cls.from_run(store, run_id, run_model_sha256(store, run_id), cache_dir=cache_dir)
        found = read_champion(store)
        if found is None:
            raise NoChampionError(f"no champion in {store.url}; run `boneflow run` first")
        return cls.from_run(store, *champion_model(found[0], store.url), cache_dir=cache_dir)

    @classmethod
    def from_run(cls, store, run_id: str, sha256: str, *, cache_dir: Path | None = None) -> Predictor:
        """The run's model whose weights have `sha256`, fetched (verified) into the cache once."""
        folder = cached_model(store, run_id, sha256, root=cache_dir)
        return cls.from_files(folder / WEIGHTS, folder / MODEL_JSON, run_id=run_id, model_sha256=sha256)

    @classmethod
    def from_files(cls, weights: Path, model_json: Path, *, run_id: str, model_sha256: str) -> Predictor:
        from boneflow.train.model import load_model

        # Bounds first: load_model sizes the network from model.json before reading weights.
        read_model_meta(model_json, source=f"runs/{run_id}/model.json")
        try:
            model, meta = load_model(weights, model_json)
        except BoneflowError:
            raise
        except Exception as err:  # safetensors' own error, a shape mismatch in load_state_dict
            detail = f"{type(err).__name__}: {err}"
            raise ModelNotFoundError(
                f"runs/{run_id}/{WEIGHTS} does not load into the network model.json describes "
                f"({detail[:300]}); re-publish the run"
            ) from None
        return cls(model=model, meta=meta, run_id=run_id, model_sha256=model_sha256)

    @classmethod
    def from_model_dir(cls, model_dir: Path, *, run_id: str) -> Predictor:
        """A run's model from a folder holding its model files (the publish stage's copy)."""
        return cls.from_files(model_dir / WEIGHTS, model_dir / MODEL_JSON, run_id=run_id, model_sha256="")

    def preprocess(self, image) -> torch.Tensor:
        """Path | bytes | PIL image → normalised float [1,1,crop,crop], as evaluation does it."""
        pixels = np.array(load_xray(image, self.pack_size), copy=True)  # writable: torch warns on read-only
        return self.preset(torch.from_numpy(pixels)[None])

    def _label(self, prob_fractured: float) -> str:
        return POSITIVE if prob_fractured >= self.operating_point.threshold else self.classes[1 - self.positive_index]

    def predict(self, image) -> dict[str, Any]:
        # Literally evaluation's function on the packed-size pixels: same crop, normalisation,
        # memory format and precision (bf16 autocast where the CPU/GPU has native bf16).
        pixels, t = load_xray(image, self.pack_size), self.operating_point.temperature
        prob = float(predict_proba(self.model, pixels, image_size=self.image_size, device="cpu", temperature=t)[0])
        return {"label": self._label(prob), "prob_fractured": round(prob, 6), "run_id": self.run_id}

    def explain(self, image) -> Explanation:
        """Prediction and Grad-CAM from one forward pass per member (see gradcam.py for why it
        is cheap); a fold ensemble's probability is its members' mean calibrated probability
        (as in train/ensemble.py) and its map the mean of theirs, scaled to peak 1."""
        if not self._gradcams:
            members = list(self.model.members) if isinstance(self.model, FoldEnsemble) else [self.model]
            self._gradcams = [GradCAM(model=m) for m in members]
        x = fast_layout(self.preprocess(image))
        cpu = torch.device("cpu")
        probs, cams = [], []
        for gradcam in self._gradcams:
            with autocast(cpu, use_bf16(cpu)):  # the precision predict/evaluation use
                logits, member_cam = gradcam(x, class_index=self.positive_index)
            cams.append(member_cam.float())
            calibrated = torch.softmax(logits.float() / self.operating_point.temperature, dim=1)
            probs.append(calibrated[0, self.positive_index].item())
        cam = torch.stack(cams).mean(dim=0)
        cam = cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
        prob = float(np.mean(probs))
        seen = (x[0, 0] * self.std + self.mean).mul(255).round().clamp(0, 255).to(torch.uint8)
        return Explanation(
            label=self._label(prob),
            prob_fractured=round(prob, 6),
            run_id=self.run_id,
            image=seen.numpy(),
            heatmap=cam[0].numpy(),
        )
