"""Turning Lark's parse errors into diagnostics a microscopist can act on.

The other module that imports Lark. `syntax_diagnostic` looks at what went wrong and
where (an unknown word where a statement starts, a number glued to an unknown unit, a
window without `..`, a bracket left open, a keyword on the wrong line) and says it in the
user's terms, with a fix; only when nothing specific applies does it fall back to
"unexpected X; expected Y", naming tokens the way a user writes them, never Lark's names.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dkl.dsl.errors import Diagnostic, did_you_mean
from dkl.dsl.units import UNITS

_AFTER_QUANTITY = re.compile(r"([0-9.]|[0-9.][ \t]*(keV|eV|mrad|px|nm|ms|min|s|A|e/A2))[ \t]*$")

STATEMENTS = (
    "experiment", "instrument", "measure", "exposure", "patch", "stride", "region", "exclude",
    "scalarize", "maximize", "minimize", "acquire", "seed", "model", "train", "stop", "publish",
)

_DESCRIBE = {
    "NUMBER": "a number",
    "DIMENSIONED": "a number with a unit",
    "NAME": "a name",
    "WORD": "a name",
    "STRING": 'a string in double quotes ("...")',
    "NEWLINE": "the end of the line",
    "SEMI": "`;`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "DOTDOT": "`..`",
    "DOT": "`.`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "COMPARE": "a comparison (`<` or `>`)",
    "$END": "the end of the file",
}


def describe_terminal(name: str) -> str:
    """How a user would call a terminal: never a Lark-internal name."""
    if name in _DESCRIBE:
        return _DESCRIBE[name]
    if name.isalpha() and name.isupper():
        return f"`{name.lower()}`"
    return "something else"


def syntax_diagnostic(err: UnexpectedInput, text: str) -> Diagnostic:
    """The one diagnostic for the first syntax error Lark found in `text`."""
    line, column = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        if char == '"':
            return Diagnostic("error", "E003", "unterminated string: add the closing `\"` "
                              "on the same line", line, column, column + 1)
        shown = f"`{char}`" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
        return Diagnostic("error", "E002", f"unexpected character {shown}" + _char_hint(char),
                          line, column, column + 1)
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    glued = _glued_unit(text, tok.start_pos if tok.type != "$END" else len(text))
    if glued:
        word, unit_column = glued
        return Diagnostic("error", "E011", f"unknown unit `{word}`" + did_you_mean(word, UNITS)
                          + f" (units: {', '.join(UNITS)})", line,
                          unit_column, unit_column + len(word))
    expected = set(err.expected) | set(getattr(err, "accepts", None) or ())
    end = column + max(1, len(str(tok)))
    if tok.type in {"NAME", "WORD"} or (tok.type.isupper() and str(tok).isalpha()):
        word = str(tok)
        if expected & {"SCALARIZE", "ACQUIRE"}:
            return Diagnostic("error", "E010", f"unknown statement `{word}`"
                              + did_you_mean(word, STATEMENTS), line, column, end)
        if word in STATEMENTS:
            unclosed = _unclosed(text, tok)
            if unclosed:
                closing = {"(": ")", "[": "]"}[unclosed]
                return Diagnostic("error", "E004", f"`{unclosed}` is not closed: add `{closing}` "
                                  f"before `{word}`", line, column, end)
            return _new_statement(word, line, column)
        if err.state is not None and _after_number(text, tok):
            return Diagnostic("error", "E011", f"unknown unit `{word}`"
                              + did_you_mean(word, UNITS)
                              + f" (units: {', '.join(UNITS)})", line, column, end)
    before = text[: tok.start_pos]
    previous = re.search(r"([A-Za-z_]+)[ \t]*$", before)
    statement = before[max(before.rfind("\n"), before.rfind(";")) + 1:]
    if previous and previous.group(1) in STATEMENTS and statement.strip() != previous.group(1):
        # a keyword read as a setting name, e.g. `acquire EI stop after 5`
        return _new_statement(previous.group(1), line, column - (tok.start_pos - previous.start(1)))
    if tok.type in {"NUMBER", "DIMENSIONED"} and _AFTER_QUANTITY.search(text[: tok.start_pos]):
        if _wants_dotdot(text, tok, expected):
            return Diagnostic("error", "E005", f"missing `..` before `{tok}`: a window is "
                              "written `LOW .. HIGH`, e.g. `1.2 eV .. 1.6 eV`", line, column, end)
        if expected & {"COMMA", "DOTDOT"}:
            return Diagnostic("error", "E005", f"missing `,` before `{tok}`", line, column, end)
    if tok.type in {"NAME", "WORD"} and "COMMA" in expected and _unclosed(text, tok) == "(":
        return Diagnostic("error", "E005", f"missing `,` before `{tok}`: arguments are "
                          "separated by commas", line, column, end)
    if tok.type in {"NEWLINE", "$END", "SEMI"}:
        unclosed = _unclosed(text, tok)
        if unclosed:
            closing = {"(": ")", "[": "]"}[unclosed]
            detail = f"`{unclosed}` is not closed: add `{closing}`"
        elif expected - {"SEMI", "NEWLINE", "$END"} == {"EQUAL"}:
            stop = len(text) if tok.type == "$END" else tok.start_pos
            setting = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*$", text[:stop])
            name = setting.group(1) if setting else "the setting"
            detail = f"`{name}` needs a value: write `{name}=VALUE`"
        else:
            detail = "expected " + _expected_text(expected)
        return _end_diagnostic(text, tok, line, column, detail)
    if tok.type in {"RPAR", "RSQB"} and tok.type not in expected:
        return Diagnostic("error", "E001", f"unmatched `{tok}`: there is no `"
                          + {"RPAR": "(", "RSQB": "["}[tok.type] + "` to close", line, column, end)
    return Diagnostic("error", "E001", f"unexpected {_token_text(tok)}; expected "
                      + _expected_text(expected), line, column, end)


_GLUED = re.compile(r"(?<![A-Za-z_0-9.])(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"(?P<unit>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z0-9]+)?)")


def _glued_unit(text: str, pos: int) -> tuple[str, int] | None:
    """A number written against an unknown unit (`1.5ev`, `50mss`) around `pos`, if any."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    for m in _GLUED.finditer(text[start: end if end >= 0 else len(text)]):
        if m.start() <= pos - start <= m.end() and m.group("unit") not in UNITS:
            return m.group("unit"), m.start("unit") + 1
    return None


def _new_statement(word: str, line: int, column: int) -> Diagnostic:
    return Diagnostic("error", "E006", f"`{word}` starts a new statement: put it on its own line "
                      "or separate the statements with `;`", line, column, column + len(word))


def _end_diagnostic(text: str, tok: Token, line: int, column: int, message: str) -> Diagnostic:
    """E004 at the end of the line (or of the file) where the statement stopped short."""
    if tok.type == "$END":
        lines = text.rstrip("\n").split("\n")
        col = len(lines[-1].rstrip("\r")) + 1
        return Diagnostic("error", "E004", "the file ends in the middle of a statement; "
                          + message, len(lines), col, col + 1)
    return Diagnostic("error", "E004", "the statement is not finished; " + message,
                      line, column, column + 1)


def _char_hint(char: str) -> str:
    """A fix for characters that have a meaning elsewhere."""
    hints = {
        "'": ": strings use double quotes (`\"...\"`)",
        "{": ": lists use square brackets (`[64, 64]`)",
        "}": ": lists use square brackets (`[64, 64]`)",
        "%": ": write the fraction as a number (`0.05`)",
        "\u2026": ": a window is written with two dots, `LOW .. HIGH`",
        "\u00b5": ": the time units are `ms`, `s` and `min` (500 µs is `0.5 ms`)",
    }
    return hints.get(char, "")


def _wants_dotdot(text: str, tok: Token, expected: set[str]) -> bool:
    """Does a number follow the LOW of a window (rather than a complete window or a point)?"""
    if "DOTDOT" not in expected:
        return False
    before = text[: tok.start_pos]
    statement = before[max(before.rfind("\n"), before.rfind(";")) + 1:].lstrip()
    if statement.startswith("seed"):
        return False
    cut = max(before.rfind(c) for c in "(,[\n;")
    return ".." not in before[cut + 1:]


def _unclosed(text: str, tok: Token) -> str | None:
    """The bracket left open on the statement that `tok` ends, if any."""
    end = len(text) if tok.type == "$END" else tok.start_pos
    start = max(text.rfind("\n", 0, end), text.rfind(";", 0, end)) + 1
    stack: list[str] = []
    in_string = False
    for ch in text[start:end]:
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            break
        elif ch in "([":
            stack.append(ch)
        elif ch in ")]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _after_number(text: str, tok: Token) -> bool:
    """Is `tok` written right after a number (so it was meant as a unit)?"""
    before = text[: tok.start_pos].rstrip(" \t")
    return bool(before) and (before[-1].isdigit() or before[-1] == ".")


def _token_text(tok: Token) -> str:
    if tok.type == "NEWLINE":
        return "end of line"
    if tok.type == "STRING":
        return f"string {tok}"
    return f"`{tok}`"


_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH"}


def _expected_text(expected: set[str]) -> str:
    if {"SCALARIZE", "ACQUIRE"} <= expected:
        return "a statement (" + ", ".join(f"`{s}`" for s in STATEMENTS[:4]) + ", ...)"
    wanted = expected - {"SEMI", "NEWLINE", "$END"}
    names = sorted({describe_terminal(e) for e in wanted - _OPERATORS})
    if len(wanted & _OPERATORS) > 1:
        names.append("an operator (`+`, `-`, `*`, `/`)")
    elif wanted & _OPERATORS:
        names.append(describe_terminal(next(iter(wanted & _OPERATORS))))
    if not names:
        names = ["the end of the statement"]
    if len(names) > 6:
        names = [*names[:6], "..."]
    return " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1]
