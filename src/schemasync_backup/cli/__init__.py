"""mysql-schema-sync: a consumer of the public API (parsing, calling the library, rendering, exit codes)."""
