import math

import pandas as pd
import pytest

from stoichgen.cli import main
from stoichgen.verify import batch
from stoichgen.verify import options as options_module
from stoichgen.verify.search import Found


def _fake(task):
    return Found(task[0], -1.0, "data_x\n", "P1 (1)", 10.0, 1, 1, 0.1)


def test_without_the_extra_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    real = options_module.importlib.util.find_spec
    monkeypatch.setattr(options_module.importlib.util, "find_spec",
                        lambda name: None if name == "pyxtal" else real(name))
    (tmp_path / "c.csv").write_text("formula\nNaCl\n")
    assert main(["verify", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "stoichgen[verify]"' in err and "Traceback" not in err


def test_verify_writes_the_columns_and_refuses_a_missing_file(monkeypatch, tmp_path, capsys):
    pytest.importorskip("chgnet")
    monkeypatch.setattr(batch, "_work", _fake)
    (tmp_path / "c.csv").write_text("formula,target\nNaCl,-2\nLiXx,-2\nKCl,-2\n")
    out = tmp_path / "v.csv"
    args = ["verify", str(tmp_path / "c.csv"), "--top", "2", "--cif-dir", str(tmp_path), "-o", str(out)]
    assert main(args) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame["verified_cif"].iloc[0].endswith("NaCl.cif")
    assert "unknown element" in frame["verify_error"][1]
    assert frame["verify_error"][2].startswith("not verified")
    assert "verified 1 of 3 rows" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_verify_adds_the_columns_to_its_top_k(monkeypatch, tmp_path):
    pytest.importorskip("chgnet")
    monkeypatch.setattr(batch, "_work", _fake)
    out = tmp_path / "g.csv"
    assert main(["generate", "--target", "-2.0", "-n", "3", "--verify", "1", "-o", str(out)]) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 3 and not math.isnan(float(frame["verified_formation_energy"][0]))
    assert frame["verify_error"][1].startswith("not verified") and frame["verify_error"][0] == ""


def test_generate_refuses_search_flags_without_verify(capsys):
    assert main(["generate", "--target", "-2.0", "--trials", "2"]) == 2
    assert "--trials apply with --verify K only" in capsys.readouterr().err
