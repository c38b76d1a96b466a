"""moesearch agent package."""
