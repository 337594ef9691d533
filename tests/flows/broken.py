"""Fails while being imported, as a module with a bug would."""

raise RuntimeError("configuration missing: set API_URL")
