"""Prometheus recording and alert rules for tokenmeter, generated from code (see rules.py)."""
