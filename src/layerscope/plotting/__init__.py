"""Figures (matplotlib, Agg backend). Science modules never import this package."""
