"""Re-id evaluation: CMC/mAP, features, re-ranking."""
