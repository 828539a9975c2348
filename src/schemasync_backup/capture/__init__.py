"""Talking to a server: the one connection module, privileges, reading a schema, restoring one."""
