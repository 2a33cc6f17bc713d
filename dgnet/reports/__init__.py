"""What ends up in ``reports/``: the claims scorecard (and, as it grows, the tables and figures)."""
