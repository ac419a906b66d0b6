from services.domain.watchdog import Reoffers, Silence, StallWatch

LAG = {("work", 3): (10, 12)}


def test_lag_that_nothing_consumes_is_a_stall_after_the_window():
    watch = StallWatch(after_s=30)
    assert watch.observe(0, LAG, busy=False, last_activity=-100) is None
    assert watch.observe(29, LAG, busy=False, last_activity=-100) is None
    reason = watch.observe(30, LAG, busy=False, last_activity=-100)
    assert reason and "2 records" in reason and "('work', 3) at 10 of 12" in reason


def test_work_in_flight_or_a_moving_commit_point_is_not_a_stall():
    watch = StallWatch(after_s=30)
    watch.observe(0, LAG, busy=False, last_activity=-100)
    assert watch.observe(40, LAG, busy=True, last_activity=-100) is None  # a long unit in flight
    assert watch.observe(50, LAG, busy=False, last_activity=45) is None  # window starts again
    assert watch.observe(79, LAG, busy=False, last_activity=45) is None
    assert watch.observe(80, {("work", 3): (11, 12)}, busy=False, last_activity=45) is None  # committed moved
    assert watch.observe(109, {("work", 3): (11, 13)}, busy=False, last_activity=45) is None
    assert watch.observe(110, {("work", 3): (11, 13)}, busy=False, last_activity=45)  # new records do not hide it


def test_no_lag_is_never_a_stall():
    watch = StallWatch(after_s=1)
    assert all(watch.observe(t, {}, busy=False, last_activity=0) is None for t in range(10))


def test_a_silent_unit_is_due_once_per_window_and_a_new_one_starts_its_window_now():
    silence = Silence(after_s=60)
    silence.touch("u0", 0)
    assert silence.due(["u0", "u1"], 30) == []  # u1 first seen at 30
    assert silence.due(["u0", "u1"], 60) == ["u0"]
    assert silence.due(["u0", "u1"], 90) == ["u1"]
    silence.touch("u0", 100)  # progress
    assert silence.due(["u0", "u1"], 130) == []
    assert silence.due(["u0", "u1"], 160) == ["u0", "u1"]  # u1 re-offered at 90, due again
    silence.forget(["u1"])
    assert silence.due(["u1"], 161) == []


def running(scan_id, **units):
    return {"scan_id": scan_id, "units": {uid: {"status": st} for uid, st in units.items()}}


def test_a_silent_unit_is_offered_again_and_failed_only_once_its_whole_scan_is_silent():
    r = Reoffers(after_s=10, max_offers=2)
    r.seen("s", "s.u0", 0)
    r.seen("s", "s.u1", 0)
    scan = running("s", **{"s.u0": "pending", "s.u1": "pending"})
    assert r.due([scan], 5) == []
    assert [(a, u) for a, _, u in r.due([scan], 10)] == [("offer", "s.u0"), ("offer", "s.u1")]
    r.seen("s", "s.u1", 15)  # u1 works; the scan is alive
    assert [(a, u) for a, _, u in r.due([scan], 20)] == [("offer", "s.u0")]
    r.seen("s", "s.u1", 25)
    assert [(a, u) for a, _, u in r.due([scan], 30)] == [("offer", "s.u0")]  # its 3rd offer: the scan is alive
    assert [(a, u) for a, _, u in r.due([scan], 40)] == [("fail", "s.u0"), ("offer", "s.u1")]  # now it is not


def test_a_reported_unit_is_never_offered():
    r = Reoffers(after_s=10)
    r.seen("s", "s.u0", 0)
    r.reported("s", "s.u0", 1)
    assert r.due([running("s", **{"s.u0": "completed"})], 100) == []


def test_a_table_recovery_that_reads_nothing_seeks_once_then_exits():
    from services.domain.watchdog import RecoveryWatch

    watch = RecoveryWatch(after_s=30.0)
    assert watch.observe(100.0, None, None) is None  # not recovering
    assert watch.observe(25.0, 0.0, None) is None  # 25 s into it, nothing read yet: not yet
    assert watch.observe(31.0, 0.0, None) == ("seek", "table recovery read no changelog record for 31 s")
    assert watch.observe(36.0, 0.0, None) is None  # one seek a quiet spell
    assert watch.observe(61.0, 0.0, None) == ("exit", "table recovery read no changelog record for 61 s")
    watch = RecoveryWatch(after_s=30.0)
    assert watch.observe(100.0, 0.0, 90.0) is None  # long, but it read a record 10 s ago
    assert watch.observe(121.0, 0.0, 90.0)[0] == "seek"  # then nothing for 31 s
    assert watch.observe(140.0, 0.0, 130.0) is None  # it read again
    assert watch.observe(161.0, 0.0, 130.0)[0] == "seek"  # a new quiet spell: a seek of its own
    assert watch.observe(191.0, 0.0, 130.0)[0] == "exit"
    watch = RecoveryWatch(after_s=30.0)
    assert watch.observe(200.0, 0.0, None)[0] == "seek"  # first seen long past both windows: seek first
    assert watch.observe(205.0, 0.0, None)[0] == "exit"


def test_a_recovery_drained_of_what_it_needs_is_sought_again_without_waiting_the_window():
    from services.domain.watchdog import DRAINED_S, RecoveryWatch

    watch = RecoveryWatch(after_s=30.0)
    assert watch.observe(5.0, 0.0, None, drained=True) is None  # first seen drained: one look is not enough
    assert watch.observe(5.0 + DRAINED_S, 0.0, None, drained=True)[0] == "seek"
    assert watch.observe(15.0 + DRAINED_S, 0.0, None, drained=True) is None  # sought: now the window to exit
    assert watch.observe(61.0, 0.0, None, drained=True)[0] == "exit"
    watch = RecoveryWatch(after_s=30.0)
    assert watch.observe(5.0, 0.0, None, drained=True) is None
    assert watch.observe(10.0, 0.0, None, drained=False) is None  # records on their way: not drained
    assert watch.observe(15.0, 0.0, None, drained=True) is None  # drained again: a new look starts
    assert watch.observe(20.0, 0.0, 18.0, drained=True) is None  # it read a record meanwhile: a new spell
    assert watch.observe(25.0, 0.0, 18.0, drained=True)[0] == "seek"
