"""The consistency checker's short run (the long one is bench/checker.sh):
a few cycles of kill -9, SIGTERM restarts, object-store errors and stalls,
flush commits whose reply is lost,
with compaction forced every second and retention active, then the whole
history checked (queue_checker.py says what is checked)."""

from queue_checker import VIOLATIONS, run


def test_no_acknowledged_record_is_lost_or_doubled_under_faults(tmp_path):
    summary, examples = run(
        tmp_path / "data",
        cycles=10,
        ops=["kill9", "store-errors", "term", "commit-replies-lost", "store-stalls", "kill9", "heal"],
        rate=300,
        cycle_secs=2.0,
        seed=1,
    )
    print(summary)
    failed = {k: (summary[k], examples[k]) for k in VIOLATIONS if summary.get(k, 0)}
    assert not failed, failed
    assert summary["nemesis"]["kill9"] >= 2 and summary["nemesis"]["term"] >= 1
    assert summary["nemesis"].get("compactions", 0) > 0
    assert summary["acked"] > 2000
    assert summary["acked_read_back"] > 1000
    assert summary["log_start_moved"] > 0, "retention never deleted anything"
    injected = summary["faults_injected"]
    assert injected["put_errors_before"] + injected["put_errors_after"] + injected["get_errors"] > 0
    assert injected["commit_replies_lost"] > 0
