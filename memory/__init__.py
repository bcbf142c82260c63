"""voxgate memory package."""
