"""Entrypoints: the Click `auth` group and the library facade (AuthClient, CredentialStore)."""
