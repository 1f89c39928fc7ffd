"""`stoichgen screen` from the command line: refusals by name, Ctrl-C and the rerun that resumes.

The screen itself (scores, files, resuming, backends) is tested in tests/screen/test_screen.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from stoichgen.cli import main


def test_bad_requests_are_refused_by_name(tmp_path, capsys):
    for args, words in [
        (["--elements", "Li,Xx,O"], "unknown element symbols 'Xx'"),
        (["--elements", "Li,Li"], "different elements"),
        (["--elements", "Li,O", "--top", "3"], "top needs a score"),
        (["--elements", "Li,O", "--target", "-1", "--objective", "stability"], "not both"),
        (["--elements", "Li,O", "--ray", "local", "-o", str(tmp_path / "x.csv")], "writes Parquet"),
        ([], "give --elements"),
    ]:
        argv = ["screen", *args] + ([] if "-o" in args else ["-o", str(tmp_path / "out.parquet")])
        assert main(argv) == 2, args
        assert words in capsys.readouterr().err, args


def test_without_ray_the_message_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    argv = ["screen", "--elements", "Li,O", "--max-atoms", "4", "--ray", "-o", str(tmp_path / "o.parquet")]
    assert main(argv) == 2
    assert 'pip install "stoichgen[ray]"' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any part was written


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_on_a_real_screen_then_rerun(tmp_path):
    """SIGINT to `stoichgen screen` once some chunks are written; the rerun skips them and writes the file
    an uninterrupted screen writes."""
    args = ["--elements", "Li,Na,Mn,Fe,Co,O", "--max-atoms", "14", "--target", "-1.5", "--workers", "1",
            "--chunk-rows", "60"]  # fmt: skip
    command = [sys.executable, "-m", "stoichgen.cli", "screen", *args]
    out = tmp_path / "screen.parquet"
    # a shell's background job inherits SIGINT ignored; the user's terminal does not
    process = subprocess.Popen([*command, "-o", str(out)], stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_sigint)  # fmt: skip
    parts = tmp_path / ".screen.parquet.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.parquet"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, process.stderr.read()
    assert "the same command again resumes" in process.stderr.read()
    done = len(list(parts.glob("*.parquet")))
    assert done >= 3 and not out.exists()
    rerun = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True, check=True)
    assert f"{done} chunks already done" in rerun.stderr
    subprocess.run([*command, "-o", str(tmp_path / "straight.parquet")], capture_output=True, check=True)
    assert out.read_bytes() == (tmp_path / "straight.parquet").read_bytes()


@pytest.mark.slow
def test_ctrl_c_stops_within_seconds_while_a_long_chunk_runs(tmp_path):
    """Issue row 15: SIGINT to a screen exited only once the running chunks had finished (44 s here with
    --workers 2). Now exit 130 within seconds however long the chunk, in this process and with worker
    processes, no half-written part, and the rerun writes the file an uninterrupted screen writes."""
    # ~106,000 formulas in two chunks, the first of 90,000: about 11 s to score on a 2-core machine
    args = ["--elements", "Li,Na,K,Mg,Mn,Fe,Co,Ni,O,S,F", "--max-atoms", "14", "--target", "-1.5",
            "--chunk-rows", "90000"]  # fmt: skip
    command = [sys.executable, "-m", "stoichgen.cli", "screen", *args]
    out = tmp_path / "screen.parquet"
    for workers in ["1", "2"]:  # the second run resumes the first's screen (nothing of it finished)
        process = subprocess.Popen([*command, "--workers", workers, "-o", str(out)], stderr=subprocess.PIPE,
                                   text=True, preexec_fn=_default_sigint)  # fmt: skip
        for line in process.stderr:  # the first chunk starts after this line
            if line.startswith("stoichgen: screening"):
                break
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        status = process.wait(timeout=60)
        waited = time.monotonic() - sent
        err = process.stderr.read()
        assert status == 130, err
        assert waited < 5, f"--workers {workers} exited {waited:.1f} s after SIGINT"
        assert "the same command again resumes" in err
        assert not out.exists() and not list(tmp_path.rglob("*.tmp"))
    subprocess.run([*command, "--workers", "2", "-o", str(out)], capture_output=True, check=True)
    straight = tmp_path / "straight.parquet"
    subprocess.run([*command, "--workers", "1", "-o", str(straight)], capture_output=True, check=True)
    assert out.read_bytes() == straight.read_bytes()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("address", ["ADDRESS", "ray://ADDRESS", None])
def test_ray_without_a_cluster_is_one_line_within_seconds(tmp_path, monkeypatch, capsys, address):
    """Issue 25, row 6: --ray with no cluster was a traceback; --ray HOST:PORT with nothing listening hung,
    retrying, for minutes. Now one line naming the address, and nothing written."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    where = f"127.0.0.1:{_free_port()}"
    ray_flag = ["--ray"] if address is None else ["--ray", address.replace("ADDRESS", where)]
    argv = ["screen", "--elements", "Li,O", "--max-atoms", "4", *ray_flag, "-o", str(tmp_path / "o.parquet")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no Ray cluster at" in err and "Traceback" not in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_reproduce_on_a_missing_ray_cluster_is_refused_the_same_way(tmp_path, capsys):
    address = f"127.0.0.1:{_free_port()}"
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "report"), "--ray", address]) == 2
    assert f"no Ray cluster at '{address}'" in capsys.readouterr().err
