"""DG-Net: joint discriminative and generative learning for person re-identification."""

__version__ = "0.1.0"
