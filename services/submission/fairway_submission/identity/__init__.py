"""Identity: tokens, the caller, users, service accounts and access rules."""
