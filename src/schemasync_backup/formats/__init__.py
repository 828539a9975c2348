"""Stored forms: backup ids, the snapshot JSON and stream, object framing, the manifest. Pure: bytes in, bytes out."""
