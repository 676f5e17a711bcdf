"""Box operations."""
