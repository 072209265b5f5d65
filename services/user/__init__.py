"""user: accounts, password hashes and signed access tokens (JWT, RS256)."""
