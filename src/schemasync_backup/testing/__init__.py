"""A throwaway MariaDB server and sample schemas, for tests, the demo and notebooks."""
