from __future__ import annotations

import pytest

from stoichgen.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "data" in capsys.readouterr().out


def test_data_info_bundled(capsys):
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "rows: 49543" in out
    assert "elements: 89" in out
    assert "rows skipped: 3" in out
    assert "'2-Feb'" in out and "'3-Feb'" in out


def test_data_info_user_csv(write_csv, capsys):
    path = write_csv("f,e\nNaCl,-2\nFeO,-1.5\nbad$,1\n")
    assert (
        main(["data", "info", "--csv", str(path), "--composition-column", "f", "--property-column", "e"]) == 0
    )
    out = capsys.readouterr().out
    assert "rows: 2" in out and "min -2" in out and "line 4: 'bad$'" in out


def test_data_info_unreadable_file_exits_nonzero(tmp_path, capsys):
    assert main(["data", "info", "--csv", str(tmp_path / "missing.csv")]) != 0
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert main(["data", "info", "--csv", str(tmp_path / "empty.csv")]) != 0
