"""What ends up in ``reports/``.

- ``build``: the ``report`` stage (tables that only read metrics files, Figure 8, ``reports/README.md``);
- ``claims``: the claims scorecard; ``seeds``: every measured table over seeds;
- ``tables``: the honest-header Markdown/CSV writer every table goes through;
- ``paper``: the numbers quoted from the paper (never measured here);
- ``generation_figures``, ``rank_list``, ``tuning_figures``: the figures.
"""
