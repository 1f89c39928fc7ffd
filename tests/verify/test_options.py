import pytest

from stoichgen.errors import StoichgenError
from stoichgen.verify import options as options_module
from stoichgen.verify.options import EXTRA_HINT, VerifyError, VerifyOptions, require_extra


def test_every_setting_that_changes_a_result_changes_the_fingerprint():
    base = VerifyOptions()
    changed = [VerifyOptions(trials=5), VerifyOptions(steps=10), VerifyOptions(fmax=0.05),
               VerifyOptions(budget_s=30.0), VerifyOptions(seed=1), VerifyOptions(max_cell_atoms=8)]
    prints = {o.fingerprint() for o in changed}
    assert base.fingerprint() not in prints and len(prints) == len(changed)
    assert VerifyOptions().fingerprint() == base.fingerprint()


BAD = [({"trials": 0}, "trials"), ({"steps": -1}, "steps"), ({"fmax": 0.0}, "fmax"),
       ({"budget_s": float("nan")}, "budget_s")]


@pytest.mark.parametrize(("kwargs", "words"), BAD)
def test_bad_options_are_named(kwargs, words):
    with pytest.raises(VerifyError, match=words) as caught:
        VerifyOptions(**kwargs)
    assert isinstance(caught.value, StoichgenError)


def test_a_missing_extra_says_what_to_install(monkeypatch):
    real = options_module.importlib.util.find_spec
    monkeypatch.setattr(options_module.importlib.util, "find_spec",
                        lambda name: None if name == "chgnet" else real(name))
    with pytest.raises(VerifyError) as caught:
        require_extra()
    assert str(caught.value).startswith(EXTRA_HINT) and "chgnet" in str(caught.value)
    assert "\n" not in str(caught.value)
