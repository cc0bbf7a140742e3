"""Jobs that run their work on the job's own thread instead of asking an actor."""

from __future__ import annotations

from datetime import time

import pytest

from tradingbot.scheduler import At, Job


def test_a_job_names_either_an_actor_or_its_work() -> None:
    """A job with both an actor and work, or with neither, is refused naming the job."""
    with pytest.raises(ValueError, match="job 'x': give either an actor or work"):
        Job(name="x", rule=At(time(16, 5)), actor="notifier", work=lambda slot: None)
    with pytest.raises(ValueError, match="job 'y': give either an actor or work"):
        Job(name="y", rule=At(time(16, 5)))
    assert Job(name="z", rule=At(time(16, 5)), work=lambda slot: "done").actor == ""
