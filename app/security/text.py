"""Untrusted text (request headers, typed reasons) made safe to store and to MAC."""


def printable(text: str | None, limit: int) -> str | None:
    """Text without control characters (NUL, newlines, separators), cut to `limit`."""
    if text is None:
        return None
    return "".join(ch for ch in text if ch.isprintable())[:limit]
