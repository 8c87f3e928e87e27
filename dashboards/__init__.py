"""Grafana dashboards as grafanalib code (``*.dashboard.py``) and their rendered JSON."""
