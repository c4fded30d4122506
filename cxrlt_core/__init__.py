"""cxrlt: long-tailed and zero-shot chest X-ray classification (CXR-LT challenges)."""

__version__ = "0.1.0"
