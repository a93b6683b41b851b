"""The security domain."""
