"""Parse `.dkl` text into the typed syntax tree, turning every Lark error into ours.

One of the two modules that import Lark. The grammar is compiled once per process
(LALR, `strict=True`, positions propagated). A Lark exception never crosses this module:
it becomes a `DslSyntaxError` whose message names tokens the way a user writes them.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from dkl.dsl import ast
from dkl.dsl.errors import Diagnostic, DslSyntaxError, did_you_mean
from dkl.dsl.transform import ToAst
from dkl.dsl.units import UNITS

_local = threading.local()

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


def _on_comment(tok: Token) -> None:
    _local.comments.append((tok.line, tok.column, str(tok)))


@lru_cache(maxsize=1)
def grammar() -> Lark:
    """The compiled grammar, built once per process."""
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _on_comment},
    )


def parse(text: str) -> ast.Program:
    """Parse experiment text into a `Program`.

    Raises:
        DslSyntaxError: the text is not a valid `.dkl` program (one diagnostic, the first).
    """
    _local.comments = []
    try:
        tree = grammar().parse(text)
        statements = ToAst().transform(tree)
    except UnexpectedInput as err:
        raise DslSyntaxError([_syntax_diagnostic(err, text)]) from err
    except VisitError as err:  # a bug in ToAst, never the user's fault: keep the cause
        raise RuntimeError(f"internal error while reading the syntax tree: {err.orig_exc}") from err
    return ast.Program(tuple(statements), tuple(_local.comments))


def _syntax_diagnostic(err: UnexpectedInput, text: str) -> Diagnostic:
    line, column = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        if char == '"':
            return Diagnostic("error", "E003", "unterminated string: add the closing `\"` "
                              "on the same line", line, column, column + 1)
        shown = f"`{char}`" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
        return Diagnostic("error", "E002", f"unexpected character {shown}", line, column, column + 1)
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = set(err.expected) | set(getattr(err, "accepts", None) or ())
    if tok.type == "$END":
        lines = text.splitlines() or [""]
        last = len(lines)
        col = len(lines[-1]) + 1
        return Diagnostic("error", "E004", "the file ends in the middle of a statement; expected "
                          + _expected_text(expected), last, col, col + 1)
    end = column + max(1, len(str(tok)))
    if tok.type in {"NAME", "WORD"} or (tok.type.isupper() and str(tok).isalpha()):
        word = str(tok)
        if expected & {"SCALARIZE", "ACQUIRE"}:
            return Diagnostic("error", "E010", f"unknown statement `{word}`"
                              + did_you_mean(word, STATEMENTS), line, column, end)
        if err.state is not None and _after_number(text, tok):
            return Diagnostic("error", "E011", f"unknown unit `{word}`"
                              + did_you_mean(word, UNITS), line, column, end)
    if tok.type == "NEWLINE":
        return Diagnostic("error", "E004", "the statement is not finished; expected "
                          + _expected_text(expected), line, column, column + 1)
    return Diagnostic("error", "E001", f"unexpected {_token_text(tok)}; expected "
                      + _expected_text(expected), line, column, end)


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


def _expected_text(expected: set[str]) -> str:
    if {"SCALARIZE", "ACQUIRE"} <= expected:
        return "a statement (" + ", ".join(f"`{s}`" for s in STATEMENTS[:4]) + ", ...)"
    names = sorted({describe_terminal(e) for e in expected if e not in {"SEMI", "NEWLINE"}})
    if not names:
        names = ["the end of the statement"]
    if len(names) > 6:
        names = [*names[:6], "..."]
    return " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1]
