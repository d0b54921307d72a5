"""mvcap-build: multi-view image-caption datasets and Omniview-Tuning."""

__version__ = "0.1.0"
