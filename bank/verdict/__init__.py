"""Scores to a verdict: the fitted statistics of a class's normal error, p-values, and the rule that turns a bank's scores into flags and a label. Pure NumPy and SciPy maths."""
