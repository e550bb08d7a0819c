#include "text/unicode.h"
#include <string.h>

unsigned gllm_uc_class(uint32_t cp) {
    size_t lo = 0, hi = gllm_uc_n_ranges;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (cp < gllm_uc_ranges[mid].first) hi = mid;
        else if (cp > gllm_uc_ranges[mid].last) lo = mid + 1;
        else return gllm_uc_ranges[mid].cls;
    }
    return 0;
}

size_t gllm_uc_fold(uint32_t cp, uint32_t out[3]) {
    if (cp < 0x80) return out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp, 1;
    if (cp >= 0xAC00 && cp <= 0xD7A3) { /* a Hangul syllable: leading consonant, vowel, trailing consonant if any */
        const uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588, out[1] = 0x1161 + s % 588 / 28, out[2] = 0x11A7 + s % 28;
        return s % 28 ? 3 : 2;
    }
    size_t lo = 0, hi = gllm_uc_n_fold3;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (cp < gllm_uc_fold3[mid].from) hi = mid;
        else if (cp > gllm_uc_fold3[mid].from) lo = mid + 1;
        else return memcpy(out, gllm_uc_fold3[mid].to, 3 * sizeof(uint32_t)), gllm_uc_fold3[mid].to[2] ? 3 : 2;
    }
    lo = 0, hi = gllm_uc_n_fold1;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (cp < gllm_uc_fold1[mid].from) hi = mid;
        else if (cp > gllm_uc_fold1[mid].from) lo = mid + 1;
        else return out[0] = gllm_uc_fold1[mid].to, out[0] != 0;
    }
    return out[0] = cp, 1;
}

size_t gllm_utf8_decode(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    if (!n) return *cp = 0, 0;
    const unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || len > n) return *cp = 0xFFFD, 1;
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return *cp = 0xFFFD, 1;
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t gllm_utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F)), o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
