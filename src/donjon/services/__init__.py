"""Use cases. Services see repositories and the crypto layer, never HTTP."""
