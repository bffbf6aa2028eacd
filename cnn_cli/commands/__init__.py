"""One module per CLI command (cli.py parses the options and calls these)."""
