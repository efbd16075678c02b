"""Raw files (seeds) into raw.* tables, incrementally."""
