# -*- test-case-name: tests.test_config -*-
"""
Reading YAML data strictly: declarative L{Field}s, and errors that name the
path of the key at fault (C{policy.dlp-filter.acton: unknown key (did you
mean 'action'?)}), all the problems of a document gathered into one
L{ConfigError}.  The configuration and the policy plugins read their
sections with it.
"""

import difflib
import math
import re
from typing import Any, Callable, Optional

import attr

from keeptrusts.policy.scrub import credentialTypes, scrubbed


class ConfigError(Exception):
    """
    A configuration is invalid.

    @ivar problems: a tuple of C{(path, message)} pairs.
    """

    def __init__(self, problems):
        self.problems = tuple(problems)
        Exception.__init__(self, self.problems)

    def __str__(self):
        return "\n".join(f"{path}: {message}" for path, message in self.problems)


def invalid(path, message):
    return ConfigError([(path, message)])


def raiseAny(problems):
    if problems:
        raise ConfigError(problems)


def showValue(value):
    """
    A value as an error shows it: its repr, shortened; but never a value
    the credential scrubber finds something in (a key pasted where a name,
    a digest or a URL goes is still a key, and the problems of a
    configuration are logged, and journaled on a reload): only what was
    found is named.
    """
    text = repr(value)
    found = credentialTypes(text) or [
        kind for string in _strings(value) for kind in credentialTypes(string)]
    if found:
        return "a value holding a credential (%s), not shown" % (
            ", ".join(sorted(set(found))),)
    return text if len(text) <= 60 else text[:57] + "..."


def _strings(value):
    """
    The strings of C{value}, its keys' and items' too, as they are: in a
    repr, the escape of a character before a key can hide it (C{\\nsk-...}
    is no key's beginning).
    """
    seen, stack = set(), [value]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, tuple, dict)) and id(value) not in seen:
            seen.add(id(value))  # YAML's aliases may make a loop
            if isinstance(value, dict):
                stack.extend(value.keys())
                stack.extend(value.values())
            else:
                stack.extend(value)


def shownKey(key):
    """
    A mapping key as a path shows it: a credential in it (an unknown key
    that is a pasted key) replaced by its marker.
    """
    return scrubbed(key) if isinstance(key, str) else key


def joinPath(path, key):
    return f"{path}.{key}" if path else str(key)


def hint(word, candidates):
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()

# The plain types a Field may have, with how an error names them.
_EXPECTED = {str: "a string", int: "an integer", float: "a number",
             bool: "true or false", list: "a list", dict: "a mapping"}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Field:
    """
    How to read one key of a mapping.

    @ivar type: C{str}, C{int}, C{float} (integers accepted), C{bool} (only
        true or false, never 0 or 1), C{list} (read into a tuple), C{dict}, or
        any function C{parse(raw, path)} that returns a value or raises
        L{ConfigError}.
    @ivar default: the value when the key is absent or null; L{REQUIRED} when
        it must be given.  An C{attr.Factory} is called each time.
    @ivar choices: the values allowed, when they are few.
    @ivar item: for a list, how to read each element; for a dict, how to read
        the mapping.  Either a C{{name: Field}} schema, a L{Field}, a plain
        type or a parse function.  L{None} keeps the raw data.
    @ivar check: a function of the value read, returning L{None} when the value
        is fine or else the message to report.
    """

    type: Any
    default: Any = REQUIRED
    choices: Optional[tuple] = attr.ib(default=None, converter=attr.converters.optional(tuple))
    item: Any = None
    check: Optional[Callable[[Any], Optional[str]]] = None


def _isType(value, kind):
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # YAML's true is an int to Python, never to us
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def readValue(raw, path, field):
    kind = field.type
    if kind not in _EXPECTED:
        value = kind(raw, path)  # a parse function checks everything itself
    elif not _isType(raw, kind):
        raise invalid(path, f"expected {_EXPECTED[kind]}, got {showValue(raw)}")
    elif field.choices is not None and raw not in field.choices:
        allowed = ", ".join(map(str, field.choices))
        raise invalid(path, f"expected one of [{allowed}], got {showValue(raw)}")
    elif kind is list:
        value = _readList(raw, path, field.item)
    else:
        value = float(raw) if kind is float else _readItem(raw, path, field.item)
    message = field.check(value) if field.check else None
    if message:
        raise invalid(path, message)
    return value


def _readItem(raw, path, item):
    if item is None:
        return raw
    if isinstance(item, Field):
        return readValue(raw, path, item)
    if isinstance(item, dict):
        if not isinstance(raw, dict):
            raise invalid(path, f"expected a mapping, got {showValue(raw)}")
        return readSection(raw, path, item)
    if item in _EXPECTED:
        return readValue(raw, path, Field(item))
    return item(raw, path)


def _readList(raw, path, item):
    values, problems = [], []
    for index, element in enumerate(raw):
        try:
            values.append(_readItem(element, f"{path}[{index}]", item))
        except ConfigError as e:
            problems.extend(e.problems)
    raiseAny(problems)
    return tuple(values)


def readFields(raw, path, fields):
    """
    Like L{readSection}, but return C{(values, problems)}: the values that
    could be read, so later checks can still run on the rest.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, [(path or "<document>", f"expected a mapping, got {showValue(raw)}")]
    problems = [(joinPath(path, shownKey(key)),
                 "unknown key" + hint(key, fields))
                for key in raw if key not in fields]
    values = {}
    for name, field in fields.items():
        where, value = joinPath(path, name), raw.get(name)
        if value is None and field.default is not REQUIRED:  # absent or null
            default = field.default
            values[name] = default.factory() if isinstance(default, attr.Factory) else default
        elif name not in raw:
            problems.append((where, "required key missing"))
        else:
            try:
                values[name] = readValue(value, where, field)
            except ConfigError as e:
                problems.extend(e.problems)
    return values, problems


def readSection(raw, path, fields):
    """
    Read the mapping C{raw} found at C{path} (null counts as empty).

    @param fields: C{{name: Field}}.
    @return: C{{name: value}} for every field, defaults filled in.
    @raise ConfigError: listing every problem of the section.
    """
    values, problems = readFields(raw, path, fields)
    raiseAny(problems)
    return values


def setting(type, default=REQUIRED, **spec):
    """
    An attribute of a config value, with the L{Field} that reads it: each
    default and rule is written once, next to the attribute.
    """
    return attr.ib(default=attr.NOTHING if default is REQUIRED else default,
                   metadata={"field": Field(type, default, **spec)})


def recordParser(cls, finish=None):
    """
    A parse function reading a mapping into C{cls}, whose attributes are
    made by L{setting}.  C{finish(values, path)} may check keys against each
    other and fill in derived values.
    """
    schema = {a.name: a.metadata["field"] for a in attr.fields(cls)}

    def parse(raw, path):
        if not isinstance(raw, dict):
            raise invalid(path, f"expected a mapping, got {showValue(raw)}")
        values = readSection(raw, path, schema)
        if finish is not None:
            finish(values, path)
        return cls(**values)

    return parse


# Checks: each returns None when the value is fine, else a message.

def matching(pattern, what):
    regex = re.compile(pattern)
    return lambda v: None if regex.fullmatch(v) else f"expected {what}, got {showValue(v)}"


def atLeast(low):
    return lambda v: None if v >= low else f"expected a value of at least {low}, got {showValue(v)}"


def positive(v):
    return None if v > 0 else f"expected a value greater than 0, got {showValue(v)}"


def validPort(v):
    return None if 1 <= v <= 65535 else f"expected a port from 1 to 65535, got {v!r}"


def unique(values):
    dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
    return None if dup is None else f"duplicate entry {showValue(dup)}"
