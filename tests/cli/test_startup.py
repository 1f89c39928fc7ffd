"""What the command line loads before it does anything: `stoichgen --help` and a command's --help must
not wait seconds for torch and pymatgen (the issue measured 5.5 s for `stoichgen --help`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pymatgen.core", "sklearn", "matplotlib")


def loaded_after(code: str) -> set[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stderr.split())  # the help itself went to stdout


def help_of(*words: str) -> str:
    return f"from stoichgen.cli import main\ntry:\n    main({list(words)!r})\nexcept SystemExit:\n    pass"


def test_top_level_help_and_the_package_load_nothing_heavy():
    assert loaded_after(help_of("--help")) == set()
    assert loaded_after("import stoichgen") == set()


@pytest.mark.parametrize("command", ["generate", "hull", "screen", "serve", "verify"])
def test_a_commands_help_loads_no_torch(command):
    assert "torch" not in loaded_after(help_of(command, "--help"))


def test_the_generator_still_loads_on_first_use():
    assert "torch" in loaded_after("import stoichgen\nstoichgen.Generator")


def test_every_command_is_listed_and_runs_its_own_parser(capsys):
    from stoichgen.cli import COMMANDS, build_parser, main

    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in COMMANDS)
    full = build_parser()  # every command in full, as the docs site reads it
    assert full.parse_args(["hull", "x.csv"]).command == "hull"
    assert main(["hull", "no-such-file.csv"]) == 2  # the command's own parser and handler ran
