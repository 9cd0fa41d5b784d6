"""W&B for lstmgan, and the only code that imports wandb: the tracker training reports to (tracker.py), who a
run is in W&B (identity.py), the replay `lstmgan sync` uploads (sync.py), and what the pipeline calls to give
W&B the files a step wrote (publish.py)."""
