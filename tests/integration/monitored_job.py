"""A tier-1 job for the run monitoring test, served by a code server subprocess: its first
attempt records its pid and waits (to be killed); a retry records its pid and finishes."""

import os
import time
from pathlib import Path

from dagster import Definitions, job, op

from prometheus_dagster.jobs.daily import tier_tags

MARKER_DIR_ENV = "PROMETHEUS_TEST_MARKER_DIR"


@op
def wait_on_first_attempt() -> None:
    markers = Path(os.environ[MARKER_DIR_ENV])
    attempt = len(list(markers.glob("attempt-*"))) + 1
    (markers / f"attempt-{attempt}").write_text(str(os.getpid()))
    if attempt == 1:
        time.sleep(600)


@job(tags=tier_tags("1"))
def tier1_job() -> None:
    wait_on_first_attempt()


defs = Definitions(jobs=[tier1_job])
