#include "text/unicode.h"

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

static uint32_t lookup(const gllm_uc_map *m, size_t n, uint32_t cp, uint32_t none) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (cp < m[mid].from) hi = mid;
        else if (cp > m[mid].from) lo = mid + 1;
        else return m[mid].to;
    }
    return none;
}

uint32_t gllm_uc_tolower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return lookup(gllm_uc_lower, gllm_uc_n_lower, cp, cp);
}

uint32_t gllm_uc_strip_accent(uint32_t cp) { return cp < 0x80 ? cp : lookup(gllm_uc_strip, gllm_uc_n_strip, cp, cp); }

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
