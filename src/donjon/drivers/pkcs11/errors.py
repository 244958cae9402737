"""How PKCS#11 failures are told apart: an outage of the token, or data that does not open."""

from __future__ import annotations

from pkcs11 import exceptions as p11e


class TokenUnavailable(Exception):
    """The token failed in a way that is not about the data (session lost, device error, closed). Safe to show."""


# How a token says "this ciphertext does not open" (measured): SoftHSM2 2.6 answers a wrong tag, wrong
# associated data or a truncated blob with CKR_GENERAL_ERROR; NSS 3.87 with CKR_ENCRYPTED_DATA_INVALID, or
# CKR_DATA_LEN_RANGE when too short. HSMs use the others. During C_Decrypt these are a mismatch, not an outage.
DECRYPT_MISMATCH: tuple[type[Exception], ...] = (
    p11e.GeneralError,
    p11e.FunctionFailed,
    p11e.EncryptedDataInvalid,
    p11e.EncryptedDataLenRange,
    p11e.DataInvalid,
    p11e.DataLenRange,
)
