"""JupyterHub configuration for the PyTorch workshop, as a small tested package.

`hub/jupyterhub_config.py` is a flat list of decisions; the logic behind them lives here.
"""
