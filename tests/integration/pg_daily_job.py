"""A reconstructable handle on the US_EQ daily job, for runs launched in subprocesses (the
multiprocess executor re-imports the job from here). Resources come from the environment."""

from prometheus_dagster.definitions import build_definitions


def us_eq_daily_job():
    return build_definitions().resolve_job_def("US_EQ_daily")
