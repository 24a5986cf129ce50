"""The status page at `/` and `GET /api/v1/status`: what the daemon sees, without Prometheus.

history.py holds a bounded ring of per-step rows, model.py turns the daemon's
families into rows and rows into the status model, health.py is the health
score `report` prints too, page.py renders the HTML, service.py runs the
sampling loop and serves both routes. See docs/status.md.
"""
