"""Proving a backup intact, finding what is damaged, salvaging the rest."""
