"""Stage-level runs: train, then evaluate, log one tracking run, write the outputs.

The layer above :mod:`dgnet.train` and :mod:`dgnet.eval` (which never import
each other): ``runs`` (teacher, DG-Net, offline re-id: training and
evaluation runs), ``pretrain`` (the backbone's and the generator's
pre-training), ``table3`` (Table 3 and its rank list) and ``generation`` (the
``generation_eval`` stage: Table 2, disentanglement, figures). The DVC stage
scripts in ``pipelines/`` and the ``dgnet train*`` commands call them; they
pass a :class:`dgnet.tracking.Run` down to the training loops, which only know
the :class:`dgnet.runlog.RunLog` protocol.
"""
