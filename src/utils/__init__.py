"""Small shared pieces: atomic writes, the repository's paths, self-documenting configuration."""
