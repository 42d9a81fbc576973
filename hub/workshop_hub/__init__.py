"""JupyterHub configuration for the PyTorch workshop, as a small tested package.

`hub/jupyterhub_config.py` is a flat list of decisions; the logic behind them lives here, in
four parts that lean on each other in one direction only (tests/hub/test_layout.py keeps it
so), with the settings and the hub's own addresses beneath them all:

    organizer → console → room → access → settings, services
"""
