"""A table of candidates placed on the hull of known compounds (``stoichgen hull``), and the hull picture.

For every row (a composition and its formation energy in eV/atom) ``annotate`` adds ``e_above_hull``
(eV/atom; negative: below the known hull, a would-be new stable phase), ``decomposition`` (the competing
products), ``n_known`` (known compounds in its chemical system) and ``hull_error`` (why a row could not
be computed; empty otherwise). Bad rows keep their place with a reason; the rest are computed.

>>> import pandas as pd
>>> hull = Hull.from_formulas(["Li2O", "LiO2"], [-2.1, -1.0])
>>> rows = pd.DataFrame({"c": ["Li2O2", "Li2O2", "XeF2"], "e": ["-1.5", "abc", "-1"]})
>>> out = annotate(rows, "c", "e", hull)
>>> out["e_above_hull"].round(3).tolist()[0], out["hull_error"].tolist()[1:]
(0.075, ["energy 'abc' is not a number", 'no known compound holds F, Xe'])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.analysis.phase_diagram import PDEntry, PDPlotter, triangular_coord
from pymatgen.core import Composition

from stoichgen.chem.composition import parse_formula
from stoichgen.chem.hull import Hull
from stoichgen.errors import FormulaError, InputError
from stoichgen.io import atomic_path
from stoichgen.space.score import hull_of  # noqa: F401 (public here since the hull command's first days)

HULL_COLUMNS = ("e_above_hull", "decomposition", "n_known", "hull_error")


def annotate(
    table: pd.DataFrame, composition_column: str, property_column: str, hull: Hull, progress: bool = False
) -> pd.DataFrame:
    """``table`` with the hull columns added (see the module docstring); ``progress`` shows a bar on
    stderr."""
    formulas: list[str | Composition] = []
    energies: list[object] = []
    reasons: dict[int, str] = {}
    for row, (formula, value) in enumerate(
        zip(table[composition_column], table[property_column], strict=True)
    ):
        try:
            energies.append(float(str(value).strip()))
        except ValueError:
            energies.append(math.nan)
            reasons[row] = f"energy {value!r} is not a number"
        try:
            formulas.append(parse_formula(str(formula)))
        except FormulaError as err:
            formulas.append("")
            reasons.setdefault(row, str(err))
    placed = hull.query_many(formulas, [math.nan if row in reasons else e for row, e in enumerate(energies)],
                             progress=progress)  # fmt: skip
    results = [
        (math.nan, "", 0, reasons[row])
        if row in reasons
        else (r.e_above_hull, r.decomposition, r.n_known, r.reason)
        for row, r in enumerate(placed)
    ]
    out = table.copy()
    for name, column in zip(HULL_COLUMNS, zip(*results, strict=True) if results else [()] * 4, strict=True):
        out[name] = list(column)
    out["e_above_hull"] = out["e_above_hull"].astype(float)
    out["n_known"] = out["n_known"].astype(np.int64)
    return out


def _system(comps: Sequence[Composition]) -> frozenset[str]:
    return frozenset(el.symbol for c in comps for el in c)


def hull_figure(hull: Hull, formulas: Sequence[str], energies: Sequence[float]) -> dict | None:
    """pymatgen's interactive (plotly) phase diagram of the candidates' ternary system, with the
    candidates as blue stars, as plotly JSON for the web page; None unless the rows span three elements.

    >>> hull = Hull.from_formulas(["Li2O", "Fe2O3", "LiFeO2"], [-2.1, -1.7, -2.0])
    >>> figure = hull_figure(hull, ["Li5FeO4", "LiFe5O8"], [-1.9, -1.8])
    >>> [trace["name"] for trace in figure["data"] if trace.get("name") == "candidates"]
    ['candidates']
    >>> hull_figure(hull, ["Li2O"], [-2.0]) is None  # a binary system
    True
    """
    import plotly.graph_objects as go

    comps = [parse_formula(f) for f in formulas]
    system = _system(comps)
    if len(system) != 3:
        return None
    diagram, _ = hull.diagram(system)
    figure = PDPlotter(diagram, backend="plotly", show_unstable=0, ternary_style="2d").get_plot(
        label_unstable=False
    )
    order = [el.symbol for el in diagram.elements]  # the axes a, b, c
    shown = [(c, e) for c, e in zip(comps, energies, strict=True) if math.isfinite(e)]
    fractions = np.array([[c.get_atomic_fraction(el) for el in order] for c, _ in shown]).reshape(-1, 3)
    figure.add_trace(
        go.Scatterternary(
            a=fractions[:, 0], b=fractions[:, 1], c=fractions[:, 2], mode="markers", name="candidates",
            hovertext=[f"{c.reduced_formula}: {e:.3f} eV/atom (predicted)" for c, e in shown],
            marker={"symbol": "star", "size": 14, "color": "royalblue", "line": {"color": "black"}},
        )
    )  # fmt: skip
    return json.loads(figure.to_json())


def plot_hull(hull: Hull, formulas: Sequence[str], energies: Sequence[float], path: Path | str) -> Path:
    """pymatgen's phase-diagram plot (matplotlib) of the candidates' ternary or quaternary system: the
    known stable compounds and hull, with the candidates as blue stars (ternary; quaternary: the 3-D
    plot of known compounds only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = [parse_formula(f) for f in formulas]
    system = _system(comps)
    if len(system) not in (3, 4):
        raise InputError(
            f"a hull picture needs a ternary or quaternary system; the rows span {len(system)} elements "
            f"({', '.join(sorted(system))})"
        )
    diagram, _ = hull.diagram(system)  # the known hull; candidates are drawn on top of it
    candidates = [
        PDEntry(c, e * c.num_atoms, name=f"{c.reduced_formula}*")
        for c, e in zip(comps, energies, strict=True)
        if math.isfinite(e)
    ]
    axes = PDPlotter(diagram, backend="matplotlib", show_unstable=0).get_plot(label_unstable=False)
    figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
    # matplotlib logs "Ignoring fixed x limits ..." for pymatgen's equal-aspect axes: not the user's business
    logging.getLogger("matplotlib.axes._base").setLevel(logging.ERROR)
    if len(system) == 3:
        points = np.array([triangular_coord(diagram.pd_coords(c.composition)) for c in candidates])
        axes.scatter(points[:, 0], points[:, 1], marker="*", s=160, c="tab:blue", edgecolors="k", zorder=10,
                     label="candidates")  # fmt: skip
        axes.legend(loc="upper right")
    figure.set_size_inches(7, 6)
    path = Path(path)
    with atomic_path(path) as temporary:  # a failed drawing leaves no half-written picture
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".").lower())
    plt.close(figure)
    return path
