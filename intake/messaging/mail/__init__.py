"""Email: building messages from templates, and sending them (SMTP, or files on the embedded default)."""
