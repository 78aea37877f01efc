"""The chain benchmark's pure parts: the fixed / per-session split and its table."""

import pytest

from benchmarks.chain import compare_line, fit_costs, fit_line, format_table, projection


def _run(sessions: int, wall: float, storage: float, steps: dict[str, float]) -> dict:
    return {"sessions": sessions, "wall_s": wall, "storage_s": storage, "steps": steps,
            "events": 40 + 31 * sessions, "success": True, "failures": [],
            "peak_rss_mb": 900.0, "rss_before_mb": 600.0}


# a chain of two steps over 5, 21 and 63 sessions: "features" costs 2 s + 0.5 s per session,
# "portfolio" 0.2 s + 3 s per session but 0.3 s slower at 21 sessions (noise)
RUNS = [
    _run(5, 20.0, 1.0, {"features": 4.5, "portfolio": 15.2}),
    _run(21, 78.0, 2.0, {"features": 12.5, "portfolio": 63.5}),
    _run(63, 225.0, 4.0, {"features": 33.5, "portfolio": 189.2}),
]


def test_fit_line_recovers_an_exact_line() -> None:
    fixed, per_session = fit_line([5, 21, 63, 252], [2 + 0.5 * s for s in (5, 21, 63, 252)])
    assert fixed == pytest.approx(2.0)
    assert per_session == pytest.approx(0.5)


def test_fit_line_is_the_least_squares_line_through_noisy_points() -> None:
    fixed, per_session = fit_line([5, 21, 63], [15.2, 63.5, 189.2])
    # normal equations by hand: mean x 89/3, mean y 89.3, sxy 5381.4, sxx 5384/3
    assert per_session == pytest.approx(5381.4 * 3 / 5384)
    assert fixed == pytest.approx(89.3 - 5381.4 * 3 / 5384 * 89 / 3)
    residuals = [y - fixed - per_session * x for x, y in zip([5, 21, 63], [15.2, 63.5, 189.2],
                                                              strict=True)]
    assert sum(residuals) == pytest.approx(0.0, abs=1e-9)
    assert max(abs(r) for r in residuals) > 0.01  # the noise is not fitted away


def test_fit_line_needs_two_session_counts() -> None:
    with pytest.raises(ValueError):
        fit_line([21, 21], [3.0, 3.2])


def test_fit_costs_splits_steps_chain_storage_and_time_outside_steps() -> None:
    fit = fit_costs(RUNS)
    assert fit["features"]["fixed_s"] == pytest.approx(2.0)
    assert fit["features"]["per_session_s"] == pytest.approx(0.5)
    assert fit["portfolio"]["per_session_s"] == pytest.approx(3.0, rel=0.02)
    # outside the steps: 0.3, 2.0, 2.3 s: the line of wall minus both steps
    outside = fit["outside the steps"]
    wall, steps = fit["chain (wall)"], [fit["features"], fit["portfolio"]]
    assert outside["per_session_s"] == pytest.approx(
        wall["per_session_s"] - sum(s["per_session_s"] for s in steps))
    assert fit["Dagster storage"]["per_session_s"] == pytest.approx(0.0509, rel=1e-3)


def test_a_step_is_fitted_over_the_runs_it_succeeded_in_and_totals_over_successful_runs(
) -> None:
    failed = {**_run(63, 90.0, 3.0, {"a": 34.0}), "success": False,
              "failures": ["b: DagsterExecutionStepExecutionError: Error occurred while "
                           'executing op "b":\n      DataSchemaError: no tradable candidate']}
    runs = [_run(5, 10.0, 1.0, {"a": 5.0, "b": 4.0}), _run(21, 30.0, 2.0, {"a": 13.0, "b": 16.0}),
            failed]
    fit = fit_costs(runs)
    assert fit["a"]["fixed_s"] == pytest.approx(2.5)  # 5, 13, 34 s at 5, 21, 63 sessions
    assert fit["a"]["per_session_s"] == pytest.approx(0.5)
    assert fit["b"]["per_session_s"] == pytest.approx(0.75)  # only the two runs it ran in
    assert fit["b"]["fixed_s"] == pytest.approx(0.25)
    assert fit["chain (wall)"]["per_session_s"] == pytest.approx(1.25)  # the failed run left out
    lonely = fit_costs([runs[0], _run(21, 30.0, 2.0, {"a": 13.0})])
    assert lonely["b"] == {"fixed_s": None, "per_session_s": None}
    table = format_table({"market": "US_EQ", "names": 30, "runs": runs, "fit": fit})
    assert "FAILED: b: DataSchemaError: no tradable candidate" in table
    lonely_table = format_table({"market": "US_EQ", "names": 30, "fit": lonely,
                                 "runs": [runs[0], _run(21, 30.0, 2.0, {"a": 13.0})]})
    assert "| b | - | - | 4.000 | - | - | - |" in lonely_table


def test_table_sorts_steps_by_per_session_cost_and_ends_with_the_projection() -> None:
    result = {"market": "US_EQ", "names": 120, "runs": RUNS, "fit": fit_costs(RUNS),
              "per_partition": [_run(1, 9.0, 0.5, {"features": 2.6, "portfolio": 3.1}),
                                _run(1, 11.0, 0.5, {"features": 2.4, "portfolio": 3.3})],
              "prepare": {"history": 61.0, "training": 42.0}}
    table = format_table(result)
    lines = table.splitlines()
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| step | fixed s / run | s / session | S=5 s | S=21 s | S=63 s")
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == [
        "portfolio", "features", "chain (wall)", "Dagster storage", "outside the steps"]
    features = rows[2].split(" | ")
    assert features[1:6] == ["2.000", "0.500", "4.500", "12.5", "33.5"]
    assert features[6] == "2.500"  # mean of the per-partition runs
    chain = fit_costs(RUNS)["chain (wall)"]
    expected = chain["fixed_s"] + 5040 * chain["per_session_s"]
    assert projection(chain) == pytest.approx(expected)
    assert lines[-1].startswith("**projection**: 5,040 sessions as one run = ")
    assert f"= {expected:.0f} s ({expected / 3600:.1f} h)" in lines[-1]
    assert "one run per partition: 5,040 x 10.0 s = 50400 s (14.0 h)" in lines[-1]
    assert "- preparation: history 61 s, training 42 s" in table
    assert "- S=63: 1993 events written" in table


def test_before_and_after_runs_side_by_side() -> None:
    before = [{**r, "wall_s": 2 * r["wall_s"], "peak_rss_mb": 1200.0} for r in RUNS]
    line = compare_line(before, RUNS)
    assert "S=5: 40.0 s -> 20.0 s (2.00x), peak RSS 1200 -> 900 MB" in line
    after, earlier = fit_costs(RUNS)["chain (wall)"], fit_costs(before)["chain (wall)"]
    assert (f"chain line {earlier['fixed_s']:.1f} s + {earlier['per_session_s']:.3f} s / session"
            f" -> {after['fixed_s']:.1f} s + {after['per_session_s']:.3f} s / session") in line
    table = format_table({"market": "US_EQ", "names": 120, "runs": RUNS, "fit": fit_costs(RUNS),
                          "before": {"code": "/work/main", "runs": before}})
    assert line in table.splitlines()
