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


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("stoichgen.cli.runs.load_mp_formation_energy", interrupted)
    assert main(["data", "info"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_ctrl_c_in_a_real_process_exits_130(tmp_path):
    """SIGINT to a training process: one line on stderr, status 130, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "stoichgen.cli", "train", "--model", "dnn", "--repr", "b", "--minutes", "5",
         "--no-compile", "--out", str(tmp_path / "run")],
        stderr=subprocess.PIPE, text=True,
        # a shell's background job (CI launched with &) inherits SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "losses.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    # no checkpoint yet: a plain rerun of the same command starts it again
    from stoichgen.cli import main as run_main

    assert run_main(["train", "--model", "dnn", "--repr", "b", "--steps", "2", "--no-compile",
                     "--out", str(tmp_path / "run")]) == 0  # fmt: skip


def test_serve_warns_when_bound_beyond_this_machine(monkeypatch, capsys):
    import uvicorn

    started = {}
    # the socket is bound before the "serving" line (issue 25, row 13) and handed to uvicorn's server
    def run(self, sockets) -> None:
        started["host"], started["port"] = sockets[0].getsockname()[:2]

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert "warning: binding 0.0.0.0" in err and "http://0.0.0.0:8123/" in err
    assert started == {"host": "0.0.0.0", "port": 8123}
    assert main(["serve"]) == 0 and "warning" not in capsys.readouterr().err  # 127.0.0.1 by default


def test_serve_refuses_a_model_that_is_not_a_run(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
