"""Adoption reporting: rollups (incremental, watermarked) and the adoption report read from them."""
