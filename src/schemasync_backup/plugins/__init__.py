"""The pluggy hooks, the plugin manager, the built-in codecs and the AES-256-GCM cipher with its keys."""
