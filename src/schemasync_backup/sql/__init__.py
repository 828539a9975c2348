"""SQL text: quoting, SHOW CREATE parsing, the one DDL renderer, and what the mysql client does with a script. Pure."""
