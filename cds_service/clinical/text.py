"""Free text as the matchers read it: one Unicode form, so that a drug or a problem cannot
hide behind the way its name was typed.

docs/card-topics.md ("Value-set completeness"): names are matched after Unicode NFKC
normalisation with format characters and combining marks removed. A zero-width space or a
soft hyphen inside "gaba\u200bpentin", fullwidth letters ("ｇａｂａｐｅｎｔｉｎ") or a combining
accent ("gabape\u0301ntin") then read as "gabapentin". Cards still show the name as recorded.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories dropped: format characters (zero-width space and joiners, soft hyphen,
#: bidirectional marks) and combining marks.
_DROPPED = frozenset({"Cf", "Mn", "Mc", "Me"})


def normalise(text: str) -> str:
    """NFKC of `text` with format characters and combining marks removed.

    Decomposed first (NFKD) so that a precomposed accented letter loses its mark the same
    way as a letter followed by a combining one; recomposed (NFKC) at the end. Plain ASCII,
    the common case, is returned as it is.
    """
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in _DROPPED)
    return unicodedata.normalize("NFKC", kept)
