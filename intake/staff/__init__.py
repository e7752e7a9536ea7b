"""Staff: accounts and roles, sign-in with bearer tokens, guards, and the audit trail."""
