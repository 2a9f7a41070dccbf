"""Run filters: MLflow's ``search_runs`` grammar, plus ``or``, ``not`` and parentheses.

    params.lr > 0.1 and metrics.acc >= 0.9
    (tags.team = 'nlp' or tags.team = 'cv') and attributes.status != 'failed'
    params.optimizer/class LIKE '%Adam%'      attributes.status IN ('completed', 'running')

A field is ``params.``, ``metrics.`` (the last value), ``tags.`` or ``attributes.`` followed by
a name; names with spaces or symbols go in backticks or double quotes. Numbers compare as
numbers, the rest as text. A run without the field never matches, as in MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unitrack.errors import UnitrackError

_SECTIONS = {
    "params": "params", "param": "params", "parameters": "params",
    "metrics": "metrics", "metric": "metrics",
    "tags": "tags", "tag": "tags",
    "attributes": "attributes", "attribute": "attributes", "attr": "attributes", "run": "attributes",
}  # fmt: skip
_OPERATORS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">")
_KEYWORDS = {"and", "or", "not", "like", "ilike", "in"}
_NAME_CHARS = re.compile(r"[A-Za-z0-9_\-/.:@]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)$", re.IGNORECASE)

Run = Mapping[str, Mapping[str, Any]]
Predicate = Callable[[Run], bool]


class FilterError(UnitrackError, ValueError):
    """A filter expression that cannot be parsed; the message says where."""


@dataclass(frozen=True)
class _Token:
    kind: str  # field, op, keyword, value, lparen, rparen, comma, end
    text: str
    value: Any
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char in "(),":
            tokens.append(_Token({"(": "lparen", ")": "rparen", ",": "comma"}[char], char, char, column))
            i += 1
        elif char in "'\"`":
            closing = text.find(char, i + 1)
            if closing < 0:
                raise FilterError(f"filter: unterminated string starting at column {column}")
            tokens.append(_Token("value", text[i : closing + 1], text[i + 1 : closing], column))
            i = closing + 1
        elif any(text.startswith(op, i) for op in _OPERATORS):
            op = next(op for op in _OPERATORS if text.startswith(op, i))
            tokens.append(_Token("op", op, {"==": "=", "<>": "!="}.get(op, op), column))
            i += len(op)
        else:
            match = _NAME_CHARS.match(text, i)
            if not match:
                raise FilterError(f"filter: unexpected character {char!r} at column {column}")
            word = match.group()
            after = i + len(word)
            if word.endswith(".") and word[:-1].lower() in _SECTIONS and text[after : after + 1] in ("`", '"'):
                closing = text.find(text[after], after + 1)
                if closing < 0:
                    raise FilterError(f"filter: unterminated quoted name starting at column {after + 1}")
                section = _SECTIONS[word[:-1].lower()]
                tokens.append(_Token("field", text[i : closing + 1], (section, text[after + 1 : closing]), column))
                i = closing + 1
            else:
                tokens.append(_word_token(word, column))
                i = after
    tokens.append(_Token("end", "", None, len(text) + 1))
    return tokens


def _word_token(word: str, column: int) -> _Token:
    lower = word.lower()
    if lower in _KEYWORDS:
        return _Token("keyword", word, lower, column)
    if _NUMBER.match(word):
        return _Token("value", word, float(word), column)
    if lower in ("true", "false"):
        return _Token("value", word, lower == "true", column)
    section, dot, name = word.partition(".")
    if dot and section.lower() in _SECTIONS and name:
        return _Token("field", word, (_SECTIONS[section.lower()], name), column)
    known = ", ".join(sorted({f"{s}." for s in ("params", "metrics", "tags", "attributes")}))
    raise FilterError(f"filter: {word!r} at column {column} is not a field: fields start with {known}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.position = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.position]

    def take(self) -> _Token:
        token = self.current
        self.position += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.current
        if token.kind != kind:
            found = f"{token.text!r}" if token.text else "the end"
            raise FilterError(f"filter: expected {what} at column {token.column}, found {found}")
        return self.take()

    def keyword(self, word: str) -> bool:
        if self.current.kind == "keyword" and self.current.value == word:
            self.position += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        self.expect("end", "'and', 'or' or the end")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda run: any(p(run) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda run: all(p(run) for p in parts))

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda run: not inner(run)
        if self.current.kind == "lparen":
            self.take()
            inner = self.disjunction()
            self.expect("rparen", "')'")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        section, name = self.expect("field", "a field such as params.lr or metrics.acc").value
        negate = self.keyword("not")
        if self.keyword("in"):
            values = self.value_list()
            return _membership(section, name, values, negate)
        if self.current.kind == "keyword" and self.current.value in ("like", "ilike"):
            pattern = _like_pattern(self.take().value, self.expect("value", "a quoted pattern").value)
            return _matcher(section, name, pattern, negate)
        if negate:
            raise FilterError(f"filter: 'not' after a field must be followed by LIKE or IN (column {self.current.column})")
        op = self.expect("op", "an operator (= != < <= > >= LIKE IN)").value
        value = self.expect("value", "a number or a quoted string").value
        return _comparison(section, name, op, value)

    def value_list(self) -> list[Any]:
        self.expect("lparen", "'(' after IN")
        values = [self.expect("value", "a value").value]
        while self.current.kind == "comma":
            self.take()
            values.append(self.expect("value", "a value").value)
        self.expect("rparen", "')'")
        return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return None


def _lookup(run: Run, section: str, name: str) -> tuple[bool, Any]:
    values = run.get(section) or {}
    if name in values:
        return True, values[name]
    return False, None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    a: Any
    b: Any
    if left is not None and right is not None:
        a, b = left, right
    else:
        a, b = str(actual).lower() if isinstance(actual, bool) else str(actual), str(expected)
    return {
        "=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
    }[op]  # fmt: skip


def _comparison(section: str, name: str, op: str, expected: Any) -> Predicate:
    def predicate(run: Run) -> bool:
        present, actual = _lookup(run, section, name)
        if not present or actual is None:
            return False
        try:
            return _compare(actual, op, expected)
        except TypeError:
            return False

    return predicate


def _membership(section: str, name: str, values: list[Any], negate: bool) -> Predicate:
    def predicate(run: Run) -> bool:
        present, actual = _lookup(run, section, name)
        if not present or actual is None:
            return False
        return any(_compare(actual, "=", v) for v in values) != negate

    return predicate


def _like_pattern(operator: str, pattern: Any) -> re.Pattern[str]:
    parts = ["." if c == "_" else ".*" if c == "%" else re.escape(c) for c in str(pattern)]
    return re.compile("^" + "".join(parts) + "$", re.DOTALL | (re.IGNORECASE if operator == "ilike" else 0))


def _matcher(section: str, name: str, pattern: re.Pattern[str], negate: bool) -> Predicate:
    def predicate(run: Run) -> bool:
        present, actual = _lookup(run, section, name)
        if not present or actual is None:
            return False
        return bool(pattern.match(str(actual))) != negate

    return predicate


def compile_filter(text: str) -> Predicate:
    """A predicate over ``{"params": .., "metrics": .., "tags": .., "attributes": ..}`` for ``text``."""
    if not text or not text.strip():
        return lambda run: True
    return _Parser(text).parse()
