"""Progress you can read in a log (issue 25 item 5): outside a terminal, long loops write plain lines with
count, rate and ETA through logging at an interval or every 5 %; in a terminal tqdm stays."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from builders import REPO
from skingen.progress import LogProgress, progress


def test_log_lines_every_five_percent_with_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="skingen.progress")
    bar = LogProgress(total=100, desc="stylegan2-ada c1", unit="step", interval=3600, min_gap=0)
    bar.set_postfix(loss_g="0.693")
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "stylegan2-ada c1: 0/100 step (0 %)"
    assert len(lines) == 21  # the start, then every 5 steps (5 %); closing adds nothing new
    assert lines[1].startswith("stylegan2-ada c1: 5/100 step (5 %), ") and " step/s, ETA " in lines[1]
    assert lines[1].endswith("loss_g=0.693")
    assert lines[-1].startswith("stylegan2-ada c1: 100/100 step (100 %)") and "ETA" not in lines[-1]


def test_an_interval_of_zero_logs_every_update_and_iteration_closes(caplog):
    caplog.set_level(logging.INFO, logger="skingen.progress")
    assert list(LogProgress(range(3), desc="cells", unit="cell", interval=0, min_gap=0)) == [0, 1, 2]
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "cells: 0/3 cell (0 %)", "cells: 1/3 cell (33 %)", "cells: 2/3 cell (66 %)", "cells: 3/3 cell (100 %)"]


def test_not_a_terminal_gives_log_lines_and_a_disabled_bar_gives_none(caplog):
    caplog.set_level(logging.INFO, logger="skingen.progress")
    assert isinstance(progress(range(2), desc="x"), LogProgress)  # pytest captures stderr: not a terminal
    list(progress(range(2), desc="quiet", enabled=False))
    assert not any("quiet" in r.getMessage() for r in caplog.records)


def test_a_classifier_run_with_its_output_in_a_file_logs_each_epoch(tmp_path, phantom_shards):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nepochs = 2\nbatch_size = 16\ngradcam_per_class = 0\n")
    log = tmp_path / "cell.log"
    with open(log, "w") as fh:  # as a SLURM or local-executor log: not a terminal
        proc = subprocess.run([sys.executable, "-m", "skingen.cli", "classify", "train", str(phantom_shards), "--out",
                               str(tmp_path / "o"), "--config", str(cfg)], cwd=REPO, stdout=fh, stderr=fh,
                              env={**os.environ, "SKINGEN_PROGRESS_SECONDS": "0"})
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "o epoch 1/2: 0/" in text and "batch (100 %)" in text and " batch/s" in text
    assert "o: epoch 2/2 done: train loss " in text and "val macro-F1 " in text
    assert "\r" not in text  # no carriage-return bars smeared over the log


def test_a_fast_loop_writes_its_first_and_last_line_only(caplog):
    caplog.set_level(logging.INFO, logger="skingen.progress")
    list(LogProgress(range(1000), desc="fast", interval=3600))  # 5 % steps, all within the 1 s gap
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["fast: 0/1000 it (0 %)",
                                                                      "fast: 1000/1000 it (100 %)"]
