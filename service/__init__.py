"""The HTTP service: scores raw records with the champion model (``make serve``)."""
