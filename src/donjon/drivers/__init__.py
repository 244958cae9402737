"""Protocol clients shared by the keystores, the secret stores and the SDK's backends.

One place per protocol: ``pkcs11`` (loading and initialising a module, PIN sources, logging in once per
process, a session pool, finding keys), ``kmip`` (a mutual-TLS connection pool speaking KMIP 1.4) and
``vault`` (a Vault / OpenBao connection over hvac). Each also declares the connection options its users
share, as ``donjon.options`` models. Nothing here knows about keystores, stores or the SDK: failures are the
driver's own exceptions, which each user turns into its own errors.
"""
