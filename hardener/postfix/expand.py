"""Postfix's `$name` expansion (mac_parse + mac_expand), as postconf -x and the daemons do it.

Forms: `$name`, `${name}`, `$(name)`, `$$` (a literal `$`), `${name?text}`, `${name:text}`,
`${name?{text}}`, `${name:{text}}`, `${name?{text1}:{text2}}` and relational expressions
`${{a} == {b} ? {t} : {f}}` with `==` `!=` `<` `<=` `>` `>=` (numeric when both sides are all digits)
and the `level` suffix (`<level`, ...) that compares compatibility levels such as "3.6".
Text without braces after `?`/`:` runs to the end of the expression (Postfix 2.x compatibility).
Errors (unbalanced braces, bad names, more than 100 nested expansions) raise ExpandError, as
Postfix stops with "macro processing error".

Bounds beyond Postfix's: mac_expand limits only the nesting depth, so `x1 = $x0$x0` ... `x40 =
$x39$x39` makes Postfix itself build a 2**40-fold string (`postconf -x x25` takes 14 s and 830 MB on
Postfix 3.7, x30 runs out of time). A config that hardener reads may come from anyone, so one
expansion stops with ExpansionLimit after MAX_RESULT_LENGTH characters of result or MAX_REFERENCES
`$name` references (the second catches the same bomb built on an empty x0). Both are far above any
real value: Postfix's longest default expands to under 2,000 characters.
"""

from __future__ import annotations

from collections.abc import Callable

WHITESPACE = " \t\r\n\f\v"
MAX_LEVEL = 100                 # Postfix's mac_expand: "unreasonable macro call nesting"
MAX_RESULT_LENGTH = 1 << 20     # characters of one expanded value (hardener's own bound)
MAX_REFERENCES = 10_000         # $name references expanded for one value (hardener's own bound)
_OP_CHARS = "<>!=?+-*/~&|%"
_OPERATORS = ("==", "!=", "<", "<=", ">=", ">")

# lookup(name, test_only) -> value, or None when the parameter is undefined
Lookup = Callable[[str, bool], "str | None"]


class ExpandError(ValueError):
    """A value Postfix cannot expand (it would stop with 'macro processing error')."""


class ExpansionLimit(ExpandError):
    """A value whose expansion grows past MAX_RESULT_LENGTH or MAX_REFERENCES (see the module
    docstring); Postfix would try to build it."""


class Budget:
    """What one expansion has used so far: result characters and $name references.

    Shared by the nested expansions of one value (relational operands included), so the bounds
    hold for the whole value; `references` is also what tests read to see the work was bounded.
    """

    def __init__(self, max_length: int = MAX_RESULT_LENGTH,
                 max_references: int = MAX_REFERENCES) -> None:
        self.max_length = max_length
        self.max_references = max_references
        self.length = 0
        self.references = 0
        self.outer: str | None = None   # the top-level $name being expanded, for the message

    def add_text(self, size: int) -> None:
        self.length += size
        if self.length > self.max_length:
            raise ExpansionLimit(f"expanding {self._what()}gives more than {self.max_length} "
                                 f"characters{_HINT}")

    def add_reference(self, name: str, *, top_level: bool) -> None:
        self.references += 1
        if top_level:
            self.outer = name
        if self.references > self.max_references:
            raise ExpansionLimit(f"expanding {self._what()}takes more than "
                                 f"{self.max_references} $name references{_HINT}")

    def _what(self) -> str:
        return f"${self.outer} " if self.outer else "the value "


_HINT = (" (refused: a parameter that names another twice, like x1 = $x0$x0, doubles it at "
         "each level)")


def expand(pattern: str, lookup: Lookup, budget: Budget | None = None) -> str:
    """Expand every `$` form in `pattern` recursively, looking names up with `lookup`.

    ExpandError for what Postfix refuses; ExpansionLimit when the result or the work grows past
    the bounds of `budget` (a fresh Budget() by default).
    """
    try:
        return _Expander(lookup, budget=budget or Budget()).run(pattern)
    except RecursionError:
        raise ExpandError(f'unreasonable macro call nesting: "{pattern}"') from None


def references(pattern: str) -> list[str]:
    """Parameter names referenced as $name in `pattern`, in order (conditional branches included)."""
    found: list[str] = []

    def lookup(name: str, test_only: bool) -> str | None:
        found.append(name)
        return "x"  # non-empty: walk the ?-branches; ':' branches are walked by the scan below

    try:
        _Expander(lookup, scan=True, budget=Budget()).run(pattern)
    except ExpandError:
        pass
    return list(dict.fromkeys(found))


def compat_level_number(text: str) -> int:
    """A compatibility level ("2", "3.6", "3.6.1") as one comparable number; ValueError if malformed."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f'malformed compatibility level syntax: "{text}"')
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    if numbers[1] > 1023 or numbers[2] > 1023:
        raise ValueError(f'malformed compatibility level syntax: "{text}"')
    return (numbers[0] << 20) | (numbers[1] << 10) | numbers[2]


def _alldig(text: str) -> bool:
    return bool(text) and all("0" <= c <= "9" for c in text)


def _compare(left: str, op: str, right: str, suffix: str) -> bool:
    if suffix == "level":
        try:
            delta = compat_level_number(left) - compat_level_number(right)
        except ValueError as exc:
            raise ExpandError(str(exc)) from None
    elif _alldig(left) and _alldig(right):
        delta = int(left) - int(right)
    else:
        delta = (left > right) - (left < right)
    return {"==": delta == 0, "!=": delta != 0, "<": delta < 0, "<=": delta <= 0,
            ">=": delta >= 0, ">": delta > 0}[op]


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    return pos


def _curly_payload(text: str, pos: int) -> tuple[str, int]:
    """text[pos] is '{': return the balanced payload and the position after '}' and whitespace."""
    level = 0
    for end in range(pos, len(text)):
        if text[end] == "{":
            level += 1
        elif text[end] == "}":
            level -= 1
            if level == 0:
                return text[pos + 1:end], _skip_ws(text, end + 1)
    raise ExpandError(f'unbalanced {{}} in attribute expression: "{text[pos:]}"')


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def parse_tokens(value: str) -> list[tuple[str, str]]:
    """mac_parse: split `value` into ('literal', text) and ('expr', inside-of-$) tokens."""
    tokens: list[tuple[str, str]] = []
    buf: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != "$":
            buf.append(ch)
            i += 1
            continue
        if i + 1 < n and value[i + 1] == "$":
            buf.append("$")
            i += 2
            continue
        if buf:
            tokens.append(("literal", "".join(buf)))
            buf = []
        i += 1
        if i < n and value[i] in "({":
            open_ch = value[i]
            close_ch = ")" if open_ch == "(" else "}"
            level, j = 1, i + 1
            while level > 0:
                if j >= n:
                    raise ExpandError(f'truncated macro reference: "{value}"')
                if value[j] == open_ch:
                    level += 1
                elif value[j] == close_ch:
                    level -= 1
                j += 1
            name = value[i + 1:j - 1]
            i = j
        else:
            j = i
            while j < n and _is_name_char(value[j]):
                j += 1
            name = value[i:j]
            i = j
        if not name:
            raise ExpandError(f'empty macro name: "{value}"')
        tokens.append(("expr", name))
    if buf:
        tokens.append(("literal", "".join(buf)))
    return tokens


class _Expander:
    def __init__(self, lookup: Lookup, scan: bool = False, depth: int = 0, *,
                 budget: Budget) -> None:
        self.lookup = lookup
        self.scan = scan
        self.depth = depth
        self.budget = budget
        self.level = 0
        self.out: list[str] = []

    def run(self, pattern: str) -> str:
        self._parse(pattern)
        return "".join(self.out)

    def _sub(self, pattern: str) -> str:
        """A fresh expansion (relational operands start at level 0 in Postfix, too)."""
        if self.depth >= MAX_LEVEL:
            raise ExpandError(f'unreasonable macro call nesting: "{pattern}"')
        return _Expander(self.lookup, self.scan, self.depth + 1, budget=self.budget).run(pattern)

    def _parse(self, pattern: str) -> None:
        for kind, text in parse_tokens(pattern):
            self.level += 1
            if self.level > MAX_LEVEL:
                raise ExpandError(f'unreasonable macro call nesting: "{text}"')
            if kind == "literal":
                if not self.scan:
                    self.budget.add_text(len(text))
                    self.out.append(text)
            else:
                self._expression(text)
            self.level -= 1

    def _expression(self, expr: str) -> None:
        pos = _skip_ws(expr, 0)
        if pos < len(expr) and expr[pos] == "{":
            value, pos = self._relational(expr, pos)
            ch = expr[pos] if pos < len(expr) else ""
            if ch and ch not in "?:":
                raise ExpandError(f'"?" or ":" expected at: "...}}>>>{expr[pos:pos + 20]}"')
            pos += 1 if ch else 0
        else:
            start = pos
            ch = ""
            while True:
                after = _skip_ws(expr, pos)
                if after >= len(expr):
                    name, test = expr[start:pos], False
                    pos = after
                    break
                if expr[after] in "?:":
                    name, test, ch = expr[start:pos], True, expr[after]
                    pos = after + 1
                    break
                if not _is_name_char(expr[pos]):
                    raise ExpandError(f'attribute name syntax error at: '
                                      f'"...{expr[:pos]}>>>{expr[pos:pos + 20]}"')
                pos += 1
            self.budget.add_reference(name, top_level=self.depth == 0 and self.level == 1)
            value = self.lookup(name, test)
        if ch == "":
            if value and not self.scan:
                self._parse(value)
            return
        if ch == "?":
            pos = _skip_ws_to_curly(expr, pos)
            if pos < len(expr) and expr[pos] == "{":
                if_true, pos = _curly_payload(expr, pos)
            else:
                if_true, pos = expr[pos:], len(expr)
            if value or self.scan:
                self._parse(if_true)
            if pos >= len(expr):
                return
            if expr[pos] != ":":
                raise ExpandError(f'":" expected at: "...{if_true}}}>>>{expr[pos:pos + 20]}"')
            pos += 1
        pos = _skip_ws_to_curly(expr, pos)
        if pos < len(expr) and expr[pos] == "{":
            if_false, pos = _curly_payload(expr, pos)
        else:
            if_false, pos = expr[pos:], len(expr)
        if not value or self.scan:
            self._parse(if_false)
        if pos < len(expr):
            raise ExpandError(f'unexpected input at: "...{if_false}}}>>>{expr[pos:pos + 20]}"')

    def _relational(self, expr: str, pos: int) -> tuple[str, int]:
        left, pos = _curly_payload(expr, pos)
        op_end = pos
        while op_end < len(expr) and expr[op_end] in _OP_CHARS:
            op_end += 1
        op = expr[pos:op_end]
        if op not in _OPERATORS:
            raise ExpandError(f'"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: '
                              f'"...{left}}}>>>{expr[pos:pos + 20]}"')
        pos = op_end
        suffix_end = pos
        while suffix_end < len(expr) and expr[suffix_end].isascii() and expr[suffix_end].isalnum():
            suffix_end += 1
        suffix = expr[pos:suffix_end]
        if suffix and suffix != "level":
            raise ExpandError(f'bad operator suffix at: "...{op}>>>{suffix}"')
        pos = _skip_ws(expr, suffix_end)
        if pos >= len(expr) or expr[pos] != "{":
            raise ExpandError(f'"{{expression}}" expected at: "...{{{left}}} {op}>>>{expr[pos:pos + 20]}"')
        right, pos = _curly_payload(expr, pos)
        left_value, right_value = self._sub(left), self._sub(right)
        if self.scan:
            return "", pos
        return ("true" if _compare(left_value, op, right_value, suffix) else ""), pos


def _skip_ws_to_curly(text: str, pos: int) -> int:
    """MAC_EXP_FIND_LEFT_CURLY: skip whitespace only if a '{' follows it."""
    after = _skip_ws(text, pos)
    return after if after < len(text) and text[after] == "{" else pos
