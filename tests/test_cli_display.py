"""The live display: a line per run with its steps (epochs, or batches within epochs), the trainer's text
(images/s) and an ETA; the run's line goes when it ends and the runs counter moves on."""

import io

from rich.console import Console

from lstmgan.cli import display


def test_a_run_reporting_batches_shows_them_with_its_text_and_an_eta(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(display, "console", Console(file=buffer, width=150, force_terminal=False))
    with display.progress_display(quiet=False, total=2) as progress:
        report = display.run_reporter(progress, 0, "mnist-s0")
        report(150, 1000, "2400 img/s")
        (run_line,) = [t for t in progress.tasks if t.description == "run 1: mnist-s0"]
        assert (run_line.completed, run_line.total, run_line.fields["text"]) == (150, 1000, "2400 img/s")
        report(1000, 1000, "done")
        assert [t.description for t in progress.tasks] == ["runs"] and progress.tasks[0].completed == 1
    shown = buffer.getvalue()
    assert "1/2" in shown and "ETA" in shown


def test_quiet_shows_nothing_and_reporters_accept_calls():
    with display.progress_display(quiet=True, total=3) as progress:
        assert progress is None
        display.run_reporter(progress, 0, "rnn-L5-s0")(1, 10, "")
