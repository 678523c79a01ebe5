"""Windows lane only: add the CA certificates of a PEM file to the current user's Root store (Wine).

Run with the Windows interpreter: ``python trust_ca.py CA.pem``. The end-to-end tests need it
because Wine 8's crypt32 rejects the chain-engine configuration that truststore uses to trust the
extra CAs of $SSL_CERT_FILE (CertCreateCertificateChainEngine answers E_INVALIDARG to the
CERT_CHAIN_ENGINE_CONFIG that has hExclusiveRoot), so under Wine a test CA is only trusted through
the OS store, as a CA deployed by an administrator is on Windows. Real Windows would ask the user
to confirm; Wine does not.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from ctypes import wintypes

X509_ASN_ENCODING, PKCS_7_ASN_ENCODING = 0x1, 0x10000
CERT_STORE_ADD_REPLACE_EXISTING = 3


def main(pem_path: str) -> int:
    crypt32 = ctypes.WinDLL("crypt32", use_last_error=True)
    crypt32.CertOpenSystemStoreW.restype = wintypes.HANDLE
    crypt32.CertOpenSystemStoreW.argtypes = [wintypes.HANDLE, wintypes.LPCWSTR]
    crypt32.CertAddEncodedCertificateToStore.argtypes = [
        wintypes.HANDLE, wintypes.DWORD, ctypes.c_char_p, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p]
    crypt32.CertCloseStore.argtypes = [wintypes.HANDLE, wintypes.DWORD]
    with open(pem_path, encoding="ascii") as fh:
        text = fh.read()
    marker = "-----END CERTIFICATE-----"
    pems = [block + marker for block in text.split(marker) if "-----BEGIN CERTIFICATE-----" in block]
    store = crypt32.CertOpenSystemStoreW(None, "ROOT")
    if not store:
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        for pem in pems:
            der = ssl.PEM_cert_to_DER_cert(pem.strip())
            if not crypt32.CertAddEncodedCertificateToStore(
                    store, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, der, len(der),
                    CERT_STORE_ADD_REPLACE_EXISTING, None):
                raise ctypes.WinError(ctypes.get_last_error())
    finally:
        crypt32.CertCloseStore(store, 0)
    print(f"trusted {len(pems)} CA certificate(s) from {pem_path}")
    return 0 if pems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
