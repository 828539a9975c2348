"""The schema model: frozen snapshot data, its canonical form and hash, and the diff of two. Pure: no I/O."""
