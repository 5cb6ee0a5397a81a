"""Metrics: diagnostic (classifier) metrics with bootstrap intervals; generative metrics later."""
