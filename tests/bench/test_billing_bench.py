"""The billing benchmark at a tiny size against the test database, so it cannot rot: several threads issue
drafts at once and the numbers come out consecutive; one worker renders the PDFs; the report has its shape."""

from bench import billing as bench


def test_the_billing_benchmark_runs_and_reports(app):
    results = bench.run(app, threads=3, documents=12, pdfs=3, patients_count=4)
    issued, pdfs = results["issue"], results["pdf"]
    assert issued["issued"] == 12 and issued["errors"] == 0, issued["first_errors"]
    assert issued["consecutive"] and issued["duplicates"] == 0
    assert issued["per_second"] > 0 and 0 < issued["p50_ms"] <= issued["p95_ms"]
    assert pdfs["documents"] == pdfs["rendered"] == 3 and pdfs["failed"] == 0
    assert pdfs["per_second"] > 0 and pdfs["sealed_kb_mean"] > 0
    markdown = bench.text({"cpus": 2}, issued, pdfs)
    assert "| issue (consultation + medicine), 3 threads | 12 |" in markdown
    assert "consecutive: True, duplicates: 0, errors: 0" in markdown and "PDF render (1 worker) | 3 |" in markdown
