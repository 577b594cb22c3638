"""Tag expressions over a contact's tags: `家长 and not (已购 or 退款)`."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(\()|(\))|\"([^\"]*)\"|'([^']*)'|([^\s()\"']+))")
_KEYWORDS = {"and", "or", "not"}

Predicate = Callable[[Collection[str]], bool]


class TagExprError(ValueError):
    """A tag expression does not parse."""


@dataclass(frozen=True)
class TagExpr:
    source: str
    tags: frozenset[str]
    _predicate: Predicate

    def matches(self, tags: Collection[str]) -> bool:
        return self._predicate(tags)


def parse(source: str) -> TagExpr:
    tokens = _tokenize(source)
    parser = _Parser(tokens, source)
    predicate = parser.expr()
    if parser.pos != len(tokens):
        raise TagExprError(f"unexpected {tokens[parser.pos][1]!r} in {source!r}")
    return TagExpr(source, frozenset(parser.tags), predicate)


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = source.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TagExprError(f"cannot read {text[pos:]!r} in {source!r}; quote tags that contain quotes or spaces")
        pos = match.end()
        if match.group(1):
            tokens.append(("(", "("))
        elif match.group(2):
            tokens.append((")", ")"))
        elif match.group(3) is not None or match.group(4) is not None:
            tokens.append(("tag", match.group(3) if match.group(3) is not None else match.group(4)))
        else:
            word = match.group(5)
            operator = next((op for op in ("&&", "||", "&", "|", "!") if op in word), None)
            if operator is not None:  # `家长&&已购` would otherwise be one tag nobody has
                raise TagExprError(f"unexpected {operator!r} in {source!r}")
            tokens.append((word.lower(), word) if word.lower() in _KEYWORDS else ("tag", word))
    if not tokens:
        raise TagExprError("an empty tag expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], source: str) -> None:
        self.tokens = tokens
        self.source = source
        self.pos = 0
        self.tags: set[str] = set()

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def expr(self) -> Predicate:
        left = self.term()
        while self._peek() == "or":
            self.pos += 1
            right = self.term()
            left = (lambda a, b: lambda tags: a(tags) or b(tags))(left, right)
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self._peek() == "and":
            self.pos += 1
            right = self.factor()
            left = (lambda a, b: lambda tags: a(tags) and b(tags))(left, right)
        return left

    def factor(self) -> Predicate:
        kind = self._peek()
        if kind == "not":
            self.pos += 1
            inner = self.factor()
            return lambda tags: not inner(tags)
        if kind == "(":
            self.pos += 1
            inner = self.expr()
            if self._peek() != ")":
                raise TagExprError(f"missing ')' in {self.source!r}")
            self.pos += 1
            return inner
        if kind == "tag":
            tag = self.tokens[self.pos][1]
            self.pos += 1
            self.tags.add(tag)
            return lambda tags: tag in tags
        if kind is None:
            raise TagExprError(f"{self.source!r} ends where a tag was expected")
        raise TagExprError(f"unexpected {self.tokens[self.pos][1]!r} in {self.source!r}; expected a tag, 'not' or '('")
