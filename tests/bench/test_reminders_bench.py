"""The reminders benchmark at a tiny size against the test database, so it cannot rot: two real workers
send every due reminder to the fake once, and the report has its shape."""

from bench import reminders as bench


def test_the_reminders_benchmark_runs_and_reports(app, app_config):
    result = bench.run(app, app_config, reminders=24, workers=2, patients_count=6, timeout=180)
    assert result["reminders"] == result["sent"] == result["received_by_fake"] == 24
    assert result["duplicates"] == 0 and result["not_sent"] == 0
    assert result["per_second"] > 0
    markdown = bench.text({"cpus": 2}, result)
    assert "| 24 | 2 |" in markdown and "| 24 | 0 | 0 |" in markdown
