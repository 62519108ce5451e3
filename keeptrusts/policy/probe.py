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


def leadingLiterals(source):
    """
    Literals, lower-cased (case is not compared), one of which every match
    of C{source} begins with; C{()} when that cannot be told.  Zero-width
    assertions and lookbehinds in front are skipped; a leading group of
    alternatives, C{(?:...)} or C{(?i:...)}, gives one literal per
    alternative.
    """
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
            return leadingLiterals(source[i + len(opening):end - 1])
    literal = _literalAt(source, i)
    return (literal,) if literal else ()


def leadingLiteral(source):
    """
    The one literal every match of C{source} begins with (see
    L{leadingLiterals}), or C{""}.
    """
    literals = leadingLiterals(source)
    return literals[0] if len(literals) == 1 else ""


def _literalAt(source, i):
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
    return "".join(out).lower()
