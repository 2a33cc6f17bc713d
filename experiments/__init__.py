"""Optuna studies over DG-Net's loss weights and schedule (see experiments/README.md)."""
