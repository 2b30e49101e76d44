"""The root supervisor: configuration, listeners, queue tree, children, privileges, control."""
