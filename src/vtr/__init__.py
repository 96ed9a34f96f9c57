"""vtr: video-text retrieval with masked visual modeling (MILES, MASCOT) in PyTorch Lightning."""

__version__ = "0.1.0"
