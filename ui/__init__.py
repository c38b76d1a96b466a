"""moesearch ui package."""
