"""voxgate orchestration package."""
