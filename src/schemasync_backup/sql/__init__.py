"""SQL text, pure: quoting, SHOW CREATE TABLE parsing, and what the mysql client does with a script."""
