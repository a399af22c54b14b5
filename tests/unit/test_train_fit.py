"""fit(): learning, resume after a kill, fallback from a corrupted checkpoint, model behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from boneflow.errors import BoneflowError
from boneflow.evaluate.predict import predict_proba
from boneflow.settings import TrainSettings
from boneflow.train.checkpoint import list_checkpoints
from boneflow.train.fit import fit
from demo_helpers import make_packed

SETTINGS = TrainSettings(image_size=32, epochs=3, batch_size=16, lr=2e-3, patience=0, pretrained=False, device="cpu")


class Killed(RuntimeError):
    pass


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The test machine's 2 cores are shared by several processes; two OpenMP threads that spin at
    # barriers while the other core is busy made these tiny fits ~10x slower (measured).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return make_packed(size=36, n_train=48, n_val=24, n_test=24, seed=5)


def _kill_after(epoch: int):
    def on_epoch(stats):
        if stats["epoch"] == epoch:
            raise Killed(f"simulated kill after epoch {epoch}")

    return on_epoch


def test_resume_after_kill_finishes_with_same_epochs_and_same_result(tiny, tmp_path):
    straight = fit(tiny, SETTINGS, checkpoint_dir=tmp_path / "straight")

    seen = []
    with pytest.raises(Killed):
        fit(tiny, SETTINGS, checkpoint_dir=tmp_path / "killed", on_epoch=_kill_after(2))
    resumed = fit(tiny, SETTINGS, checkpoint_dir=tmp_path / "killed", on_epoch=seen.append)

    assert resumed.resumed_from_epoch == 2 and straight.resumed_from_epoch is None
    assert resumed.epochs_run == straight.epochs_run == 3
    assert [s["epoch"] for s in seen] == [3]  # only the missing epoch was trained
    keys = {
        "epoch",
        "epochs",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "seconds",
        "img_per_s",
        "lr",
        "checkpoint",
    }
    assert keys <= set(seen[0]) and seen[0]["checkpoint"].endswith("epoch-0003.pt")
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # Per-epoch seeding + restored optimizer/scheduler: the resumed run retraces the straight one.
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    assert resumed.best_epoch == straight.best_epoch
    # A third start on a finished run trains nothing and returns the same model.
    again = fit(tiny, SETTINGS, checkpoint_dir=tmp_path / "killed", on_epoch=seen.append)
    assert again.epochs_run == 3 and len(seen) == 1
    x = torch.rand(4, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(again.model(x), resumed.model(x))


def test_corrupted_latest_checkpoint_falls_back_to_previous(tiny, tmp_path):
    with pytest.raises(Killed):
        fit(tiny, SETTINGS, checkpoint_dir=tmp_path, on_epoch=_kill_after(2))
    assert [e for e, _ in list_checkpoints(tmp_path)] == [1, 2]
    latest = list_checkpoints(tmp_path)[-1][1]
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated mid-write by a crash

    seen = []
    result = fit(tiny, SETTINGS, checkpoint_dir=tmp_path, on_epoch=seen.append)
    assert result.resumed_from_epoch == 1
    assert [s["epoch"] for s in seen] == [2, 3] and result.epochs_run == 3
    assert [e for e, _ in list_checkpoints(tmp_path)] == [2, 3]


def test_resume_with_other_settings_is_refused(tiny, tmp_path):
    fit(tiny, dataclasses.replace(SETTINGS, epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(BoneflowError, match="epochs"):
        fit(tiny, SETTINGS, checkpoint_dir=tmp_path)


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(tiny, tmp_path, monkeypatch):
    # Validation loss is scripted (best at epoch 2, worse afterwards) so the test checks the
    # stopping rule itself, not whether a tiny network happens to plateau.
    import boneflow.train.fit as fit_module

    scripted = iter([0.9, 0.5, 0.7, 0.8, 0.6, 0.4])
    monkeypatch.setattr(fit_module, "evaluate", lambda *a, **k: {"loss": next(scripted), "acc": 0.5, "n": 32})
    settings = dataclasses.replace(SETTINGS, epochs=6, patience=2)
    result = fit(tiny, settings, checkpoint_dir=tmp_path)
    assert result.epochs_run == 4 < settings.epochs  # stopped early, after 2 epochs without progress
    assert result.best_epoch == 2
    best_weights = torch.load(tmp_path / "epoch-0004.pt", weights_only=True)["best"]["state"]
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor.cpu(), best_weights[name]), name
    # Restarting a run that already stopped early trains nothing more.
    assert fit(tiny, settings, checkpoint_dir=tmp_path).epochs_run == 4


def test_loss_goes_down_and_a_flipped_image_keeps_its_label(tmp_path):
    packed = make_packed(size=48, n_train=256, n_val=64, n_test=96, seed=2)
    settings = dataclasses.replace(SETTINGS, image_size=40, epochs=4, batch_size=32)
    result = fit(packed, settings, checkpoint_dir=tmp_path)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    test = packed.split("test")
    probs = predict_proba(result.model, test.images, image_size=40)
    flipped = predict_proba(result.model, np.ascontiguousarray(test.images[:, :, ::-1]), image_size=40)
    accuracy = ((probs >= 0.5) == test.labels).mean()
    agreement = ((probs >= 0.5) == (flipped >= 0.5)).mean()
    assert accuracy >= 0.8, accuracy
    assert agreement >= 0.85, agreement
