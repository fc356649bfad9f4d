"""`make bench`'s report (issue 20 item 8): every figure printed beside its target with
whether it is met, and docs/PERFORMANCE.md keeping the tables of earlier runs."""

from bench import run


def test_a_new_table_pushes_the_last_one_into_the_history_newest_first():
    doc = ("# Performance\n\ntext\n\n<!-- bench:start -->\nLast `make bench` (A):\n\n| a |\n"
           "<!-- bench:end -->\n")
    doc = run.with_history(doc, "<!-- bench:start -->\nLast `make bench` (B):\n\n| b |\n"
                                "<!-- bench:end -->")
    doc = run.with_history(doc, "<!-- bench:start -->\nLast `make bench` (C):\n\n| c |\n"
                                "<!-- bench:end -->")
    block, history = doc.split(run.HISTORY)
    assert "(C)" in block and "(A)" not in block and "(B)" not in block
    assert history.index("`make bench` (B)") < history.index("`make bench` (A)")
    assert "Last" not in history
    assert doc.startswith("# Performance\n\ntext\n")


def test_each_row_says_whether_its_target_is_met(capsys, monkeypatch):
    monkeypatch.setattr(run, "SCENARIOS", {"api"})
    run.report({"yardstick": 0.1,
                "api": {"rps": 812.0, "p50": 30.0, "p99": 99.0, "errors": 0},
                "pipeline": {"done": 10000, "sent_before": 0, "seconds": 3.0, "queued": 10000,
                             "start": 1.0},
                "callbacks": (20000, 1.0), "webhooks": (10000, 5.0)})
    lines = {line.split(" | ")[0]: line for line in capsys.readouterr().out.splitlines()
             if line.startswith("| ") and " | " in line}
    assert lines["| API atomic create+send (32 connections)"].endswith("| met |")
    assert lines["| Pipeline queued → accepted by SendGrid (batched)"].endswith("| met |")
    assert lines["| Callback ingestion (signed 1,000-event batches → applied)"].endswith(
        "| met |")
    assert lines["| Webhook fan-out (signed POSTs to a local receiver)"].endswith(
        "| **missed** |")
    assert "≥ 2,500 deliveries/s" in lines["| Webhook fan-out (signed POSTs to a local receiver)"]
