"""medforensics: detect tampering and deepfakes in medical images."""

__version__ = "0.1.0"

__all__ = ["__version__"]
