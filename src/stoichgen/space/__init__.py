"""The candidate space below discover/, screen/ and evaluate/: which integer formulas are candidates
(``formulas``: enumeration by construction, the validity rule with the oxidation table as its
parameter, the one formula writer) and how they are ranked (``score``)."""

from stoichgen.space.formulas import NEUTRAL, SMACT, Rule, candidate_counts, formula_text, rule_accepts
from stoichgen.space.score import OBJECTIVES, Chemistry, score

__all__ = ["NEUTRAL", "OBJECTIVES", "SMACT", "Chemistry", "Rule", "candidate_counts", "formula_text",
           "rule_accepts", "score"]  # fmt: skip
