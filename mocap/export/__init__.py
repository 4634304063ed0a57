"""Animation and analysis exporters (BVH, FBX, TRC, CSV, C3D)."""
