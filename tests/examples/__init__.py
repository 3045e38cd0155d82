"""Tests of the runnable examples (the demo agent service, dashboards, rules, collector config)."""
