/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks: ProcessPrng over RtlGenRandom.
 *
 * Rust 1.78+ extensions (pydantic-core, cryptography 44+) import ProcessPrng from it and fail with
 * "DLL load failed" without it. Built by ci/windows/lane.py with Debian's mingw-w64 into the Wine
 * prefix's system32; real Windows has its own and never sees this file. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* advapi32's RtlGenRandom */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
    while (size > 0) {
        ULONG chunk = size > 0x10000000 ? 0x10000000 : (ULONG)size;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        size -= chunk;
    }
    return TRUE;
}
