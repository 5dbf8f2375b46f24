"""Late chunking for retrieval-augmented generation."""
