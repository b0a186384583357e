import itertools

from soak.schedule import ACTIONS, TARGETS, plan


def test_the_same_seed_replays_the_same_faults() -> None:
    assert plan(7, 120) == plan(7, 120)
    assert plan(7, 120) != plan(8, 120)


def test_faults_stay_inside_the_run_in_order_and_hit_every_kind_of_part() -> None:
    faults = plan(3, 3000)
    times = [fault.at for fault in faults]
    assert times == sorted(times)
    assert times[0] > 0 and times[-1] < 3000
    assert {fault.target for fault in faults} == set(TARGETS)
    assert {fault.action for fault in faults} == set(ACTIONS)


def test_only_stops_are_paused_and_pauses_are_bounded() -> None:
    for fault in plan(5, 1000, pause=(0.5, 2.0)):
        if fault.action == "kill":
            assert fault.pause == 0
        else:
            assert 0.5 <= fault.pause <= 2.0


def test_faults_come_every_few_seconds() -> None:
    faults = plan(11, 600, every=(3.0, 8.0))
    gaps = [b.at - a.at for a, b in itertools.pairwise(faults)]
    assert all(2.9 <= gap <= 8.1 for gap in gaps)


def test_the_object_store_is_hit_only_when_it_is_among_the_targets() -> None:
    assert all(fault.target != "s3" for fault in plan(13, 3000))
    hit = {fault.target for fault in plan(13, 3000, (*TARGETS, "s3"))}
    assert hit == {*TARGETS, "s3"}
