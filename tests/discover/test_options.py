"""Each generation option is declared once (``discover.options``): the Python API, the CLI's ``generate``
flags and the web page's request model all come from it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from stoichgen.cli import build_parser
from stoichgen.discover.options import GuidedOptions, PaperOptions, build_options, option_specs
from stoichgen.errors import GenerateError
from stoichgen.web.app import WEB_LIMITS, GenerateRequest

FRONT = {"model", "target", "n", "method"}  # what a request has besides the options


def _generate_actions() -> dict[str, argparse.Action]:
    """The generate command's flags by destination (a range's two flags: its first, the minimum)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions: dict[str, argparse.Action] = {}
    for a in commands.choices["generate"]._actions:
        actions.setdefault(a.dest, a)
    return actions


def _flags(name: str) -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [s for a in commands.choices["generate"]._actions if a.dest == name for s in a.option_strings]


def test_the_cli_and_the_web_offer_exactly_the_options():
    options = set(option_specs())
    assert options == {f.name for f in dataclasses.fields(GuidedOptions)} | {
        f.name for f in dataclasses.fields(PaperOptions)
    }
    actions = _generate_actions()
    assert options <= set(actions)
    assert set(GenerateRequest.model_fields) == options | FRONT


@pytest.mark.parametrize("name", list(option_specs()))
def test_each_option_says_the_same_everywhere(name):
    spec, default, methods = option_specs()[name]
    action = _generate_actions()[name]
    if spec.kind == "range":  # target_range: --target-min A --target-max B
        base = "--" + name.removesuffix("_range").replace("_", "-")
        assert _flags(name) == [f"{base}-min", f"{base}-max"]
    else:
        assert action.option_strings == ["--" + name.replace("_", "-")]
    assert spec.help in action.help and (len(methods) > 1 or action.help.startswith(methods[0]))
    assert action.default is None  # unset on the command line: the method's own default applies
    if spec.choices:
        assert tuple(action.choices) == spec.choices
    field = GenerateRequest.model_fields[name]
    assert field.default == default and field.description == spec.help
    bounds = {type(m).__name__: m for m in field.metadata}
    if spec.kind == "int":
        assert bounds["Ge"].ge == spec.low and bounds["Le"].le == WEB_LIMITS.get(name, spec.high)
        assert action.type(str(int(spec.low))) == spec.low
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(str(int(spec.high) + 1))


def test_another_methods_option_is_refused_only_when_set():
    assert build_options("guided", {"balance": "mh", "max_atoms": 12}).max_atoms == 12  # a default: fine
    with pytest.raises(GenerateError, match="balance applies to method 'paper' only") as err:
        build_options("guided", {"balance": "exact"})
    assert err.value.field == "balance"
    with pytest.raises(GenerateError, match="unknown option 'colour'"):
        build_options("paper", {"colour": "red"})
    with pytest.raises(GenerateError, match="include_known must be true or false"):
        build_options("guided", {"include_known": "yes"})
    options = PaperOptions(threshold=0.05)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.threshold = 0.1  # type: ignore[misc]
