import pytest

from metasd_pyg.errors import ConfigError
from metasd_pyg.pruning import PruningSchedule


def test_constant_without_ramp():
    s = PruningSchedule(0.9)
    assert s.sparsity_at(0) == 0.9 and s.sparsity_at(17, 3) == 0.9


def test_cubic_ramp_zhu_gupta():
    s = PruningSchedule(0.9, ramp_epochs=10)
    assert s.sparsity_at(0) == 0.0
    assert s.sparsity_at(5) == pytest.approx(0.9 + (0.0 - 0.9) * 0.5**3)
    assert s.sparsity_at(10) == pytest.approx(0.9)
    assert s.sparsity_at(30) == pytest.approx(0.9)
    vals = [s.sparsity_at(e) for e in range(12)]
    assert vals == sorted(vals)


def test_linear_ramp_with_steps():
    s = PruningSchedule(0.8, ramp_epochs=4, ramp="linear", initial_sparsity=0.4, steps_per_epoch=10)
    assert s.sparsity_at(0) == pytest.approx(0.4)
    assert s.sparsity_at(1, 5) == pytest.approx(0.4 + 0.4 * 1.5 / 4)
    assert s.sparsity_at(4) == pytest.approx(0.8)


def test_due_epochs_and_steps():
    s = PruningSchedule(0.9)
    assert s.due(0, 0) and s.due(3, 0) and not s.due(3, 1)
    s = PruningSchedule(0.9, every_epochs=3)
    assert [e for e in range(7) if s.due(e, 0)] == [0, 3, 6]
    s = PruningSchedule(0.9, every_steps=4)
    assert [t for t in range(10) if s.due(2, t)] == [0, 4, 8]
    s = PruningSchedule(0.9, every_steps=4, steps_per_epoch=6)  # global step count
    assert [(e, t) for e in range(2) for t in range(6) if s.due(e, t)] == [(0, 0), (0, 4), (1, 2)]


@pytest.mark.parametrize(
    "kwargs",
    [{"target_sparsity": 1.5}, {"target_sparsity": 0.5, "every_epochs": 0},
     {"target_sparsity": 0.5, "ramp": "exp"}, {"target_sparsity": 0.5, "every_steps": 0},
     {"target_sparsity": 0.5, "ramp_epochs": -1}],
)
def test_invalid(kwargs):
    with pytest.raises(ConfigError):
        PruningSchedule(**kwargs)


def test_schedule_section_round_trip_and_ramp_shape():
    from metasd_pyg.pruning import ScheduleConfig

    cfg = ScheduleConfig(every_epochs=2, ramp_epochs=4, ramp="linear")
    sched = PruningSchedule.from_config(cfg, 0.8, steps_per_epoch=10)
    assert sched.config == cfg and sched.ramp == "linear"
    assert sched.sparsity_at(2) == pytest.approx(0.4)  # linear: half way at half the ramp
    cubic = PruningSchedule.from_config(ScheduleConfig(ramp_epochs=4), 0.8)
    assert cubic.sparsity_at(2) == pytest.approx(0.8 - 0.8 * 0.5 ** 3)
    with pytest.raises(ConfigError, match="ramp='square'"):
        ScheduleConfig(ramp="square")
