"""Runnable examples: the demo agent service, its Grafana dashboard, Prometheus rules and a collector config."""
