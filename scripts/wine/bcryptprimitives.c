/*
 * A stand-in bcryptprimitives.dll for running Windows builds of the addon under Wine, in tests only
 * (scripts/test-windows.js builds it with x86_64-w64-mingw32-gcc and puts it in the Wine prefix's
 * system32). It is never shipped.
 *
 * Why: Rust's std (1.78 and later) imports ProcessPrng from bcryptprimitives.dll for its random
 * numbers (HashMap seeds and the like). Every Windows 10+ has that DLL; Wine 8.0 does not, so
 * require() of the .node fails with "Module not found." (WINEDEBUG=err+module names the missing
 * DLL). ProcessPrng is documented to fill the buffer and always return TRUE; here the bytes come
 * from RtlGenRandom (advapi32's SystemFunction036), the older system CSPRNG that Wine does have.
 */
#include <windows.h>
#include <ntsecapi.h> /* RtlGenRandom, which is SystemFunction036 */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  /* RtlGenRandom takes a ULONG (32-bit) length; SIZE_T is 64-bit on x64, so fill in chunks. */
  while (length > 0) {
    ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
    if (!RtlGenRandom(data, chunk)) {
      /* The real ProcessPrng cannot fail; a test run must not go on with unfilled "random" bytes. */
      ExitProcess(0xC0000001u);
    }
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
