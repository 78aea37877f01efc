"""The step layer: Dagster-free reads of each engine's declared inputs and the decision
functions the daily chain and the backtest share.

A step module declares its asset's inputs once (``core.inputs.Inputs``), reads them through any
``core.reader.Reader`` (the warehouse, or the strict time machine in a backtest) and calls the
pure engine functions. Asset modules (``assets/``) wrap steps with the Dagster decorator,
metadata and MLflow logging; the backtest calls the same steps without importing any asset.
"""
