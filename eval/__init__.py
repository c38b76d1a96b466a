"""moesearch eval package."""
