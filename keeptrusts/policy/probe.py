# -*- test-case-name: tests.test_policy_stream -*-
"""
What a pattern's regular expression tells before any text is searched: the
literal its matches begin with, and its probe, a variant that finds where a
match could still begin, grow or change if the text went on.
"""

import regex

# Global inline flags such as (?i) must stay in front of a wrapped pattern.
_LEADING_FLAGS = regex.compile(r"^\(\?[aiLmsuxV01]+\)")

# Assertions that the regex module decides at the end of a text without
# reading past it; in a probe they become lookarounds, which do.
_END_ASSERTIONS = {
    "b": r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))",
    "B": r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))",
    "Z": r"(?![\s\S])",
    "$": r"(?=\n|(?![\s\S]))",
}


def _pieces(source, i=0):
    """
    Walk C{source} from C{i}: yield C{(index, piece, inClass)} for each
    escape (a backslash and what follows), character class opening (C{[}
    or C{[^}, with a C{]} first in it, which is a literal one) and other
    character; C{inClass} tells whether the piece is part of a character
    class (its opening and closing C{]} included).
    """
    inClass = False
    while i < len(source):
        c = source[i]
        if c == "\\":
            piece, part = source[i:i + 2], inClass
        elif inClass:
            piece, part, inClass = c, True, c != "]"
        elif c == "[":
            piece = "[^]" if source.startswith("[^]", i) else (
                "[]" if source.startswith("[]", i) else "[")
            part = inClass = True
        else:
            piece, part = c, False
        yield i, piece, part
        i += len(piece)


def _readingEnd(source):
    """
    C{source} with C{\\b}, C{\\B}, C{\\Z} and C{$} written as lookarounds
    (outside character classes).
    """
    out = []
    for _, piece, inClass in _pieces(source):
        if inClass:
            out.append(piece)
        elif piece == "$":
            out.append(_END_ASSERTIONS["$"])
        elif len(piece) == 2 and piece[0] == "\\" and piece[1] != "$":
            out.append(_END_ASSERTIONS.get(piece[1], piece))
        else:
            out.append(piece)
    return "".join(out)


def probe(source):
    """
    C{source} made unable to match, so that a partial search reports the
    leftmost place where any way of matching it reads the end of the text.
    """
    flags = _LEADING_FLAGS.match(source)
    head = flags.group(0) if flags else ""
    return regex.compile("%s(?:%s)(?!)" % (head, _readingEnd(source[len(head):])))


_META = set("\\[](){}.*+?|^$")
_QUANTIFIERS = set("?*{")
# Escapes that stand for one literal character.
_LITERAL_ESCAPES = set("-./:=_~\"'@#%&,;<>!` +?*()[]{}|^$")


def _structure(source, i=0):
    """
    Walk C{source} from C{i}, past escapes and character classes: yield
    C{(index, character, depth)} for each character outside them, with
    the group depth after that character.
    """
    depth = 0
    for index, piece, inClass in _pieces(source, i):
        if inClass or piece[0] == "\\":
            continue
        if piece == "(":
            depth += 1
        elif piece == ")":
            depth -= 1
        yield index, piece, depth


def _skipGroup(source, i):
    """
    The index after the group opening at C{source[i]}.
    """
    for index, c, depth in _structure(source, i):
        if c == ")" and depth == 0:
            return index + 1
    return len(source)


def _branches(source):
    """
    C{source} split at its top-level C{|}s.
    """
    out, last = [], 0
    for index, c, depth in _structure(source):
        if c == "|" and depth == 0:
            out.append(source[last:index])
            last = index + 1
    out.append(source[last:])
    return out


def fold(text):
    """
    C{text} as the prefilter compares it: case-folded as the regex module
    folds under C{(?i)}, where a dotted capital I and a dotless small i are
    an i too.
    """
    return text.casefold().replace("\u0131", "i").replace("i\u0307", "i")


# What changes how the rest of a pattern reads, or what it matches, where
# leadingLiterals does not look: verbose mode (a # starts a comment), fuzzy
# matching ({e<=1}).
_UNREADABLE = regex.compile(r"\(\?[a-zA-Z01-]*x|\{\s*[eisd]\s*[<=}]")


def leadingLiterals(source):
    """
    Literals, case-folded (case is not compared), one of which every match
    of C{source} begins with; C{()} when that cannot be told.  Zero-width
    assertions and lookbehinds in front are skipped; a leading group of
    alternatives, C{(?:...)} or C{(?i:...)}, gives one literal per
    alternative; and each is made as long as what surely follows allows
    (L{_extended}): the longer, the rarer in a text that holds no secret.
    """
    if _UNREADABLE.search(source):
        return ()
    literals = _leadingLiterals(source)
    # An empty one (an alternative that may match nothing) stands for none.
    return () if "" in literals else literals


def _leadingLiterals(source):
    branches = _branches(source)
    if len(branches) > 1:
        found = [leadingLiterals(branch) for branch in branches]
        if not all(found):
            return ()
        return tuple(dict.fromkeys(literal for literals in found for literal in literals))
    i = 0
    while i < len(source):
        if source.startswith("\\b", i):
            i += 2
        elif source.startswith("(?m:^)", i):
            i += 6
        elif source.startswith("(?<=", i) or source.startswith("(?<!", i):
            i = _skipGroup(source, i)
        else:
            break
    for opening in ("(?:", "(?i:"):
        if source.startswith(opening, i):
            end = _skipGroup(source, i)
            if source[end:end + 1] in _QUANTIFIERS:
                return ()  # the group may be absent
            inner = source[i + len(opening):end - 1]
            whole = _wholeLiterals(inner)
            if whole is None:
                return leadingLiterals(inner)
            return _extended(whole, source, end)
    literal, end = _literalAt(source, i)
    return _extended((literal,), source, end) if literal else ()


# At most this many literals for one pattern: a longer literal is rarer in
# a text, but each is one more word for the prefilter.
_MAX_LITERALS = 16


def _extended(literals, source, i):
    """
    C{literals} (each a whole beginning of C{source} up to C{i}) made longer
    by what surely follows them: literal characters, a group of literal
    alternatives, a small character class, neither of them optional
    (C{AT(?:ATT|CTT)3} gives C{atatt3} and C{atctt3}, not C{at}).
    """
    literal, i = _literalAt(source, i)
    literals = [a + literal for a in literals]
    while i < len(source) and source[i] in "([":
        if source[i] == "[":
            end, alternatives = _classAt(source, i)
        elif source.startswith("(?:", i) or source.startswith("(?i:", i):
            end = _skipGroup(source, i)
            alternatives = _wholeLiterals(
                source[source.index(":", i) + 1:end - 1])
        else:
            break  # a lookaround, a named group: not a literal
        if alternatives is None or source[end:end + 1] in _QUANTIFIERS | {"+"}:
            break
        literal, after = _literalAt(source, end)
        longer = list(dict.fromkeys(a + b + literal for a in literals
                                    for b in alternatives))
        if len(longer) > _MAX_LITERALS:
            break
        literals, i = longer, after
    return tuple(dict.fromkeys(literals))


def _wholeLiterals(source):
    """
    The alternatives of C{source} when each is a literal through and
    through, else L{None}.
    """
    alternatives = []
    for branch in _branches(source):
        literal, end = _literalAt(branch, 0)
        if end != len(branch):
            return None
        alternatives.append(literal)
    return alternatives


def _classAt(source, i):
    """
    The end of the character class opening at C{source[i]} and its
    characters, case-folded, or L{None} for them when it is negated, holds
    more than L{_MAX_LITERALS} or anything but characters and ranges.
    """
    j = i + 1
    if source[j:j + 1] in ("^", "]"):
        return _skipClass(source, i), None
    chars = []
    while j < len(source) and source[j] != "]":
        if source[j] == "[" or source[j:j + 2] in _SET_OPERATIONS:
            # A nested set, a POSIX class, set operations (the regex
            # module's): not a list of characters.
            return _skipClass(source, i), None
        if source[j] == "\\":
            if source[j + 1:j + 2] not in _LITERAL_ESCAPES or (
                    source[j + 2:j + 3] == "-"
                    and source[j + 3:j + 4] not in ("", "]")):
                # Not a character, or the low end of a range.
                return _skipClass(source, i), None
            chars.append(source[j + 1])
            j += 2
        elif source[j + 1:j + 2] == "-" and source[j + 2:j + 3] not in (
                "", "]"):
            low, high = source[j], source[j + 2]
            if not (low.isalnum() and high.isalnum()) or ord(high) - ord(
                    low) > _MAX_LITERALS:
                return _skipClass(source, i), None
            chars.extend(chr(c) for c in range(ord(low), ord(high) + 1))
            j += 3
        else:
            chars.append(source[j])
            j += 1
    chars = list(dict.fromkeys(fold(c) for c in chars))
    if len(chars) > _MAX_LITERALS:
        return j + 1, None
    return j + 1, chars


_SET_OPERATIONS = ("--", "&&", "||", "~~")


def _skipClass(source, i):
    for index, piece, inClass in _pieces(source, i):
        if index > i and not inClass:
            return index
    return len(source)


def leadingLiteral(source):
    """
    The one literal every match of C{source} begins with (see
    L{leadingLiterals}), or C{""}.
    """
    literals = leadingLiterals(source)
    return literals[0] if len(literals) == 1 else ""


def _literalAt(source, i):
    """
    The literal characters at C{source[i]}, case-folded, and where they
    end: at a character that is no literal, or before one that may be
    absent, or after one that may repeat (only a literal ending at a
    group or a class may be made longer: see L{_extended}).
    """
    out = []
    while i < len(source):
        c = source[i]
        if c == "\\" and i + 1 < len(source) and source[i + 1] in _LITERAL_ESCAPES:
            char, step = source[i + 1], 2
        elif c not in _META:
            char, step = c, 1
        else:
            break
        if source[i + step:i + step + 1] in _QUANTIFIERS:
            break  # this character may be absent
        out.append(char)
        i += step
        if source[i:i + 1] == "+":
            break
    return fold("".join(out)), i
