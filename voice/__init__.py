"""voxgate voice package."""
