"""The `opsflow` CLI and the typed client API it is a thin layer over."""
