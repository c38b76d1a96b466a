"""moesearch retrieval package."""
