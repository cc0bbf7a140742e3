"""The PostgreSQL fault-test fixture fails, never skips, under CI=true."""

from __future__ import annotations

import pytest

from support.postgres_server import unavailable, unusable_reason


def test_under_ci_a_missing_cluster_fails_the_fault_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CI=true, a cluster the tests cannot stop and start is a failure, not a skip."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required when CI=true: no cluster"):
        unavailable("no cluster")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no cluster"):
        unavailable("no cluster")


@pytest.mark.parametrize(
    ("ctl", "versions", "host", "port", "reason"),
    [
        (None, ["16"], "127.0.0.1", 5432, "pg_ctlcluster is not installed"),
        ("/usr/bin/pg_ctlcluster", [], "127.0.0.1", 5432, "found: none"),
        ("/usr/bin/pg_ctlcluster", ["15", "16"], "127.0.0.1", None, "found: 15, 16"),
        ("/usr/bin/pg_ctlcluster", ["16"], "db.example", 5432, "db.example:5432"),
        ("/usr/bin/pg_ctlcluster", ["16"], "localhost", 5433, "localhost:5433"),
    ],
)
def test_each_reason_a_cluster_is_unusable_is_named(
    ctl: str | None, versions: list[str], host: str, port: int | None, reason: str
) -> None:
    """The failure names what is wrong: the tool, the clusters found, or the URL."""
    found = unusable_reason(ctl, versions, host, port)
    assert found is not None
    assert reason in found
    assert unusable_reason("/usr/bin/pg_ctlcluster", ["16"], "127.0.0.1", None) is None
