"""seer-torch: elastic hyperparameter tuning for PyTorch with SEER (ACM SoCC 2021)."""

__version__ = "0.1.0"
