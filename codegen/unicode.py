"""Unicode tables for the tokenizers, from Python's unicodedata (build time only).

Classes (bit flags): letter (L*), number (N*), punctuation (P*), symbol (S*),
space (str.isspace), mark (M*), control (Cc, Cf). Plus the lowercase map (single code points) and
the accent-stripping map (NFD without combining marks, when that is one code point).
"""
import sys
import unicodedata

LETTER, NUMBER, PUNCT, SYMBOL, SPACE, MARK, CONTROL = 1, 2, 4, 8, 16, 32, 64
MAX_CP = 0x110000


def _class(cp):
    ch = chr(cp)
    cat = unicodedata.category(ch)
    c = 0
    if cat.startswith("L"):
        c |= LETTER
    elif cat.startswith("N"):
        c |= NUMBER
    elif cat.startswith("P"):
        c |= PUNCT
    elif cat.startswith("S"):
        c |= SYMBOL
    elif cat.startswith("M"):
        c |= MARK
    elif cat in ("Cc", "Cf"):
        c |= CONTROL
    if ch.isspace():
        c |= SPACE
    return c


def tables():
    ranges = []  # (first, last, class) runs of equal class, class != 0
    start, cur = 0, _class(0)
    for cp in range(1, MAX_CP + 1):
        c = _class(cp) if cp < MAX_CP else -1
        if c != cur:
            if cur:
                ranges.append((start, cp - 1, cur))
            start, cur = cp, c
    lower = []
    strip = []
    for cp in range(MAX_CP):
        ch = chr(cp)
        low = ch.lower()
        if len(low) == 1 and low != ch:
            lower.append((cp, ord(low)))
        if cp >= 0x80:
            base = "".join(x for x in unicodedata.normalize("NFD", ch) if not unicodedata.category(x).startswith("M"))
            if len(base) == 1 and base != ch:
                strip.append((cp, ord(base)))
            elif len(base) == 0 and unicodedata.category(ch) == "Mn":
                strip.append((cp, 0))  # a bare combining mark: dropped
    return {
        "unicode_version": unicodedata.unidata_version,
        "python": "%d.%d" % sys.version_info[:2],
        "ranges": ranges,
        "lower": lower,
        "strip": strip,
        "flags": dict(LETTER=LETTER, NUMBER=NUMBER, PUNCT=PUNCT, SYMBOL=SYMBOL, SPACE=SPACE, MARK=MARK,
                      CONTROL=CONTROL),
    }
