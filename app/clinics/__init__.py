"""The clinics domain."""
