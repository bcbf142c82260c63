"""voxgate web package."""
