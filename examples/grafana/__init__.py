"""Grafana dashboard for tokenmeter, generated from code (see dashboard.py)."""
