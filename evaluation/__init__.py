"""Metrics, plots and reports for a family's votes (scikit-learn metrics, matplotlib PNGs)."""
