#include "core/cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
/* AMX-TILE, AMX-BF16 and AMX-INT8, tile state enabled by the OS, and tile data granted to this process.
 * Linux grants it on request, once; it is asked only when an AMX table is wanted, since it
 * enlarges the process's signal frames (a request fails where a sigaltstack is too small). */
static int x86_amx(void) {
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    if (!((d >> 22) & 1) || !((d >> 24) & 1) || !((d >> 25) & 1)) return 0; /* AMX-BF16, AMX-TILE, AMX-INT8 */
    if ((xgetbv0() & 0x60000) != 0x60000) return 0; /* XTILECFG, XTILEDATA */
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
static int x86_level(void) { /* 0 scalar, 1 avx2, 2 avx512 */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0; /* OS saves XMM and YMM state */
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    if (!(avx2 && fma && f16c)) return 0;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1,
              vnni = (c >> 11) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    const int bf16 = (a1 >> 5) & 1;
    const int zmm_os = (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 upper, ZMM16-31 */
    return (f && dq && bw && vl && vnni && bf16 && zmm_os) ? 2 : 1;
}
#endif

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1 << 9)
#endif
#endif

int gllm_cpu_supports(gllm_isa_id isa) {
    if (isa == GLLM_ISA_SCALAR) return 1;
#if defined(__x86_64__)
    static int level = -1, amx = -1;
    if (level < 0) level = x86_level();
    if (isa == GLLM_ISA_AVX2) return level >= 1;
    if (isa == GLLM_ISA_AVX512) return level >= 2;
    if (isa == GLLM_ISA_AMX) {
        if (amx < 0) amx = level >= 2 && x86_amx();
        return amx;
    }
#endif
#if defined(__aarch64__)
    if (isa == GLLM_ISA_NEON) {
        const unsigned long hw = getauxval(AT_HWCAP);
        return (hw & HWCAP_ASIMDDP) && (hw & HWCAP_FPHP);
    }
#endif
    return 0;
}
