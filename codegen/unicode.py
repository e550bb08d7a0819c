"""Unicode tables for the tokenizers, from unicodedata2 15.1.0 (build time only): the Unicode
version of llama.cpp's tables, newer than the one Python 3.11's unicodedata carries (14.0).

Classes (bit flags): letter (L*), number (N*), punctuation (P*), symbol (S*),
space (str.isspace), mark (M*), control (Cc, Cf, Co, Cs: what Hugging Face's BERT normaliser drops). Plus BERT's fold of each code point: lowercased,
canonically decomposed (NFD), nonspacing marks (Mn) dropped, as Hugging Face's BERT
normaliser does; Hangul syllables, whose decomposition is arithmetic, are left to the C code.
"""
import sys

import unicodedata2 as unicodedata

UNICODE = "15.1.0"
if unicodedata.unidata_version != UNICODE:
    sys.exit("codegen: unicodedata2 %s found, the tables are made from %s (pip install unicodedata2==%s)"
             % (unicodedata.unidata_version, UNICODE, UNICODE))

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
    elif cat in ("Cc", "Cf", "Co", "Cs"):
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
    fold, fold3 = [], []  # to one code point (0: dropped), to two or three
    for cp in range(0x80, MAX_CP):
        if 0xD800 <= cp < 0xE000 or 0xAC00 <= cp <= 0xD7A3:
            continue  # surrogates; Hangul syllables
        ch = chr(cp)
        f = [ord(x) for x in unicodedata.normalize("NFD", ch.lower()) if unicodedata.category(x) != "Mn"]
        assert len(f) <= 3, hex(cp)
        if f == [cp]:
            continue
        if len(f) <= 1:
            fold.append((cp, f[0] if f else 0))
        else:
            fold3.append((cp, f + [0] * (3 - len(f))))
    return {
        "unicode_version": unicodedata.unidata_version,
        "python": "%d.%d" % sys.version_info[:2],
        "ranges": ranges,
        "fold": fold,
        "fold3": fold3,
        "flags": dict(LETTER=LETTER, NUMBER=NUMBER, PUNCT=PUNCT, SYMBOL=SYMBOL, SPACE=SPACE, MARK=MARK,
                      CONTROL=CONTROL),
    }
