"""Queue files, the queue tree, per-message state, the queue tools."""
