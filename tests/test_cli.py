"""The CLI contract: every subcommand has --help; the demo's data path runs end to end."""
from __future__ import annotations

import subprocess
import sys

import pytest

from skingen.cli import main
from skingen.data.shards import ShardReader


@pytest.mark.parametrize("cmd", [[], ["data"], ["data", "phantom"], ["data", "ingest"], ["data", "split"],
                                 ["data", "pack"]])
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(cmd + ["--help"])
    assert exc.value.code == 0
    assert "usage: skingen" in capsys.readouterr().out


def test_console_entry_point_installed():
    proc = subprocess.run([sys.executable, "-m", "skingen.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("skingen ")


def test_data_path_end_to_end(cli, tmp_path):
    assert cli("data", "phantom", "--out", tmp_path / "ph", "--n", "100", "--size", "48", "--seed", "1").code == 0
    assert cli("data", "ingest", tmp_path / "ph", "--out", tmp_path / "d" / "manifest.csv").code == 0
    assert cli("data", "split", tmp_path / "d" / "manifest.csv", "--out", tmp_path / "d" / "split.csv",
               "--dedup").code == 0
    res = cli("data", "pack", tmp_path / "d" / "split.csv", "--out", tmp_path / "shards", "--size", "24")
    assert res.code == 0 and "train=" in res.out
    train = ShardReader(tmp_path / "shards" / "train.h5")
    assert len(train) > 0 and train.image(0).shape == (24, 24, 3)
    assert train.attrs["pipeline"] == "basic" and train.attrs["split"] == "train"
