"""The chaos machinery of bench/chaos.py, in short: the scaled system (3 workers, 2 projectors, 2 APIs)
on a 3-node cluster, the mixed workload (compliance, monitor, catalog sync, sensitive-data) checked
against its independent answers, then two rounds of faults planned by a fixed seed: every fault kind
once at least (a worker, a projector and an API SIGKILLed, a broker node SIGKILLed twice in one round,
so the first comes back in sync before the second goes, and every process SIGTERMed and started
again), each round's scans final and equal to the reference, and replay equal to live at the end."""
import pytest

from harness.faults.chaos import FAULTS, Chaos

SEED = 313  # its first two rounds plan every kind of fault (harness/faults/chaos.py: Chaos.plan)
ROUNDS = 2


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    running = Chaos(tmp_path_factory.mktemp("chaos"), SEED)
    try:
        running.setup()
        yield running
    finally:
        running.teardown()


def test_rounds_of_random_faults_end_exact_and_replay_equals_live(chaos):
    rounds = [chaos.round(i) for i in range(1, ROUNDS + 1)]
    replay = chaos.finish()
    report = "\n\n".join(r.summary() for r in rounds)
    assert all(r.exact for r in rounds), "\n" + report
    assert not replay, "\n" + "\n".join(replay)
    injected = {f.kind for r in rounds for f in r.faults if f.injected}
    assert injected == set(FAULTS), f"faults injected: {sorted(injected)}\n{report}"
    assert all(f.in_flight for r in rounds for f in r.faults if f.injected), report
