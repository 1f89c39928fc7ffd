"""Evaluation: metrics of generated compositions (paper Sec. 6 and beyond) and one run's report."""
