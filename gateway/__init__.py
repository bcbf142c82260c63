"""voxgate gateway package."""
