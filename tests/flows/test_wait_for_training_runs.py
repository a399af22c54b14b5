"""Waiting for the fold trainings on the gpu pool (tasks/training.py:_wait_until_all_final)
against the harness's real API: flow runs whose states the test moves as a worker would."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.flows


@pytest.fixture
def client():
    from prefect import get_client

    with get_client(sync_client=True) as client:
        yield client


def _flow_run(client, name: str, state):
    from prefect import flow

    @flow(name="fold-training-stand-in")
    def stand_in() -> None:  # never run: the test moves its flow runs' states
        return None

    return client.create_flow_run(stand_in, name=name, state=state)


class _Worker:
    """The real client, plus a worker that ends `run` Completed once it has been read `after` times."""

    def __init__(self, client, run, after: int) -> None:
        self.client, self.run, self.after, self.reads, self.seen = client, run, after, 0, {}

    def read_flow_run(self, flow_run_id):
        from prefect.states import Completed

        if flow_run_id == self.run.id:
            self.reads += 1
            if self.reads == self.after:
                self.client.set_flow_run_state(flow_run_id, Completed(), force=True)
        found = self.client.read_flow_run(flow_run_id)
        self.seen.setdefault(found.name, []).append(found.state.type.value)
        return found

    def set_flow_run_state(self, flow_run_id, state):
        self.seen.setdefault("cancel requests", []).append(str(flow_run_id))
        return self.client.set_flow_run_state(flow_run_id, state)


def test_a_fold_waiting_for_a_pool_slot_is_not_cancelled_while_another_trains(client, monkeypatch):
    """start timeout 0: fold 1 never starts; it is cancelled only after fold 0, which was
    running, has ended (a queued fold waits its turn), and fold 0's run is not cut short."""
    from prefect.states import Running, Scheduled

    import tasks.training as training

    monkeypatch.setattr(training, "_POLL_S", 0.0)
    running = _flow_run(client, "fold-0-run", Running())
    queued = _flow_run(client, "fold-1-run", Scheduled())
    worker = _Worker(client, running, after=3)

    with pytest.raises(RuntimeError, match=r"fold-1-run \(fold 1\) did not start .* within 0s \(it was Scheduled\)"):
        training._wait_until_all_final(worker, [running, queued], 0, labels=[" (fold 0)", " (fold 1)"])

    assert worker.seen["fold-0-run"][-1] == "COMPLETED"
    assert worker.seen["cancel requests"] == [str(queued.id)]  # fold 0 was never cancelled
    assert client.read_flow_run(queued.id).state.type.value == "CANCELLED"
    assert client.read_flow_run(running.id).state.type.value == "COMPLETED"


def test_every_run_ending_returns_them_all_in_order(client, monkeypatch):
    from prefect.states import Failed, Running

    import tasks.training as training

    monkeypatch.setattr(training, "_POLL_S", 0.0)
    failed = _flow_run(client, "fold-0-failed", Failed())
    running = _flow_run(client, "fold-1-running", Running())
    worker = _Worker(client, running, after=2)
    ended = training._wait_until_all_final(worker, [failed, running], 0, labels=["", ""])
    assert [r.name for r in ended] == ["fold-0-failed", "fold-1-running"]
    assert [r.state.type.value for r in ended] == ["FAILED", "COMPLETED"]
    assert "cancel requests" not in worker.seen
