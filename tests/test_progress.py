"""The progress display of run-grid and recommend --run: plain lines off a terminal, a bar on one."""

import io
import time

from startpoint.progress import RunProgress


def test_off_a_terminal_each_finished_run_is_one_plain_line_with_rate_and_time_left():
    out = io.StringIO()
    with RunProgress(3, "grid", stream=out, terminal=False) as progress:
        for i, ok in enumerate((True, False, True)):
            progress.start(f"model-{i} on t")
            progress.log(f"training model-{i}")
            time.sleep(0.01)
            progress.finish(ok, examples_per_second=12.5 if ok else None)
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("training")]
    assert "training model-1" in out.getvalue()
    assert lines[0].startswith("[grid] 1/3 model-0 on t, 12.5 ex/s, ~") and lines[0].endswith(" left")
    assert lines[1].startswith("[grid] 2/3 model-1 on t FAILED, ~")
    assert lines[2] == "[grid] 3/3 model-2 on t, 12.5 ex/s"  # nothing left: no estimate
    assert "\x1b[" not in out.getvalue()
    assert progress.done == 3 and progress.failed == 1


def test_on_a_terminal_it_draws_a_bar_with_the_live_rate_and_prints_log_lines_above_it():
    out = io.StringIO()
    with RunProgress(2, "recommend", stream=out, terminal=True) as progress:
        progress.start("base seed 0")
        progress.log("baseline: finetuning the pretrained model")
        time.sleep(0.05)
        progress.examples(64)
        assert progress._rate().endswith(" ex/s")  # the current run's rate, from the examples seen so far
        progress.finish(True, examples_per_second=80.0)
    text = out.getvalue()
    assert "baseline: finetuning the pretrained model" in text
    assert "1/2" in text and "80.0 ex/s" in text
    assert "\x1b[" in text  # drawn with terminal control sequences


def test_time_left_is_the_mean_finished_run_times_the_runs_to_go():
    progress = RunProgress(5, "x", stream=io.StringIO(), terminal=False)
    progress.done, progress._finished_seconds = 2, 100.0
    assert progress.time_left() == "~2m30s left"
