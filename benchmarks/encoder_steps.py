"""Window embeddings and profiles steps: the range-native steps against the per-date loop they
replaced, side by side in one run on one warehouse.

    .venv/bin/python -m benchmarks.encoder_steps [--names 120] [--sessions 63] [--old REV]

Set-up (reported, not the subject): an embedded market of ``--names`` US_EQ names is ingested
from September 2022, its features and text embeddings computed, and the 2023 encoders trained
(one short epoch: inference cost does not depend on the weights). Then,
for the first ``--sessions`` sessions of 2023, each timed on the same warehouse and models:

* ``old``: the step functions of git revision ``--old`` (default ``main``), loaded from git;
* ``new``: ``steps/window_embeddings.embed_windows`` and ``steps/profiles.compute_profiles``
  over the range in one call;
* ``new_per_date``: the same functions one date at a time (the first 5 dates), the per-session
  cost of one run per partition.

The outputs of ``old`` and ``new`` are compared (they must be equal, bit for bit) and the
figures written to benchmarks/results/encoder_steps.json.
"""

import argparse
import faulthandler
import json
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pandas as pd

from benchmarks.common import REPO, write_market_config

M = "US_EQ"


def _old_module(rev: str, path: str, name: str, replace: dict[str, str]) -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for a, b in replace.items():
        src = src.replace(a, b)
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(src, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def _light_training(tmp: Path) -> None:
    """Train the encoders with one short epoch: the steps timed here run inference, whose cost
    does not depend on how well the weights were trained."""
    import shutil

    import yaml

    from prometheus_dagster.core import config as core_config

    dst = tmp / "configs"
    shutil.copytree(core_config.CONFIG_DIR, dst)
    path = dst / "engines" / "encoders.yaml"
    body = yaml.safe_load(path.read_text())
    for part in ("numeric", "joint"):
        body[part]["training"].update(epochs=1, max_samples=2000)
    body["refit"]["min_history_sessions"] = 60  # four months of history are enough here
    path.write_text(yaml.safe_dump(body))
    core_config.CONFIG_DIR = dst


def _setup(tmp: Path, names: int):
    from dagster import AssetKey, materialize

    from prometheus_dagster.assets.embeddings import encoder_assets
    from prometheus_dagster.assets.features import features_assets
    from prometheus_dagster.assets.ingestion import MARKET_TABLES, ingestion_assets
    from prometheus_dagster.engines.features import FEATURE_TABLES
    from prometheus_dagster.resources import build_resources
    from prometheus_dagster.resources.sources import SourceResource

    config = write_market_config(tmp, names, "2022-03-01", "2023-06-30")
    resources = build_resources(warehouse_url=f"duckdb:///{tmp / 'wh.duckdb'}",
                                mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    resources["source"] = SourceResource(kind="embedded", synthetic_config=str(config))
    assets = [*ingestion_assets([M]), *features_assets([M]), *encoder_assets([M], [M])]
    span = {"dagster/asset_partition_range_start": "2022-09-01",
            "dagster/asset_partition_range_end": "2023-04-28"}

    def run(selection, **kw):
        assert materialize(assets, resources=resources, selection=selection, **kw).success

    run([AssetKey([M, "instruments"]), AssetKey([M, "issuers"])])
    run([AssetKey([M, t]) for t in MARKET_TABLES], tags=span)
    run([AssetKey([M, t]) for t in FEATURE_TABLES], tags=span)
    run([AssetKey([M, "text_embeddings"])], tags=span)
    run([AssetKey([M, "encoder_models"])], partition_key="2023-01-01")
    return resources["warehouse"].get(), resources["mlflow"]


def _timed(fn, what: str = ""):
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    if what:
        print(f"{what}: {seconds:.1f} s", flush=True)
    return out, seconds


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", type=int, default=120)
    p.add_argument("--sessions", type=int, default=63)
    p.add_argument("--old", default="main")
    args = p.parse_args(argv)
    faulthandler.enable()

    from prometheus_dagster.core.calendars import trading_calendar
    from prometheus_dagster.core.config import load_engine_config
    from prometheus_dagster.engines.encoders import EncodersConfig
    from prometheus_dagster.engines.features import FeaturesConfig
    from prometheus_dagster.engines.profiles import ProfilesConfig
    from prometheus_dagster.steps.profiles import compute_profiles
    from prometheus_dagster.steps.window_embeddings import embed_windows

    old_emb = _old_module(args.old, "prometheus_dagster/assets/embeddings.py", "_old_embeddings",
                          {})
    old_prof = _old_module(args.old, "prometheus_dagster/assets/profiles.py", "_old_profiles",
                           {"prometheus_dagster.assets.embeddings": "_old_embeddings"})
    dates = list(trading_calendar(M).sessions("2023-01-02", "2023-06-30")[:args.sessions])
    few = dates[:5]
    results: dict = {"names": args.names, "sessions": len(dates), "old_revision": args.old}
    with tempfile.TemporaryDirectory(prefix="prometheus-bench-") as tmp:
        t0 = time.perf_counter()
        _light_training(Path(tmp))
        wh, mlflow = _setup(Path(tmp), args.names)
        results["setup_seconds"] = time.perf_counter() - t0
        print(f"set-up: {results['setup_seconds']:.0f} s", flush=True)
        cfg = load_engine_config("encoders").typed(EncodersConfig)
        fcfg = load_engine_config("features").typed(FeaturesConfig)
        pcfg = load_engine_config("profiles").typed(ProfilesConfig)
        win_keys = ["entity_type", "entity_id", "as_of_date"]
        (old_w, _), old_w_s = _timed(lambda: old_emb.embed_windows(
            wh, mlflow, M, dates, cfg, fcfg, "bench"), "old window embeddings")
        (new_w, _), new_w_s = _timed(lambda: embed_windows(wh, mlflow, M, dates, cfg, fcfg,
                                                           "bench"), "new window embeddings")
        per_w_s = sum(_timed(lambda d=d: embed_windows(wh, mlflow, M, [d], cfg, fcfg,
                                                       "bench"))[1] for d in few)
        for t in new_w:
            keys = win_keys + (["joint_type"] if t == "joint_embeddings" else [])
            pd.testing.assert_frame_equal(_sorted(old_w[t], keys), _sorted(new_w[t], keys),
                                          check_exact=True)
        old_p, old_p_s = _timed(lambda: old_prof.compute_profiles(
            wh, mlflow, M, dates, pcfg, "bench"), "old profiles")
        new_p, new_p_s = _timed(lambda: compute_profiles(wh, mlflow, M, dates, pcfg, cfg, fcfg,
                                                         "bench"), "new profiles")
        per_p_s = sum(_timed(lambda d=d: compute_profiles(wh, mlflow, M, [d], pcfg, cfg, fcfg,
                                                          "bench"))[1] for d in few)
        pd.testing.assert_frame_equal(_sorted(old_p, ["issuer_id", "as_of_date"]),
                                      _sorted(new_p, ["issuer_id", "as_of_date"]),
                                      check_exact=True)
    results["window_embeddings"] = {
        "rows": int(sum(len(f) for f in new_w.values())), "old_seconds": old_w_s,
        "new_seconds": new_w_s, "speedup": old_w_s / new_w_s,
        "new_per_date_seconds_per_session": per_w_s / len(few)}
    results["profiles"] = {
        "rows": len(new_p), "old_seconds": old_p_s, "new_seconds": new_p_s,
        "speedup": old_p_s / new_p_s, "new_per_date_seconds_per_session": per_p_s / len(few)}
    results["old_equals_new"] = True
    print(json.dumps(results, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoder_steps.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
