"""The encrypted text field moved to arenasite.fields, since any app may keep a secret with it.
Named here too for the code that still imports it from here."""

from arenasite.fields import EncryptedTextField, _fernet, decrypt, encrypt, fernet

__all__ = ["EncryptedTextField", "_fernet", "decrypt", "encrypt", "fernet"]
