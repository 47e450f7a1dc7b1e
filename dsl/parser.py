"""Parse `.dkl` text into the typed syntax tree, turning every Lark error into ours.

The grammar is compiled once per process (LALR, `strict=True`, the typed tree built
inline by `transform.ToAst` with every node's span). A Lark exception never crosses this
module: `syntax_errors.py` turns it into a `DslSyntaxError` whose message names tokens the
way a user writes them. Only these three modules import Lark.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from lark import Lark, Token
from lark.exceptions import UnexpectedInput, VisitError

from dkl.dsl import ast
from dkl.dsl.errors import Diagnostic, DslSyntaxError
from dkl.dsl.syntax_errors import syntax_diagnostic
from dkl.dsl.transform import ToAst

_local = threading.local()


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
        maybe_placeholders=False,
        transformer=ToAst(),  # inline: builds the typed tree directly, spans from the tokens
        lexer_callbacks={"COMMENT": _on_comment},
    )


def parse(text: str) -> ast.Program:
    """Parse experiment text into a `Program`.

    Raises:
        DslSyntaxError: the text is not a valid `.dkl` program (one diagnostic, the first).
    """
    _local.comments = []
    try:
        statements = grammar().parse(text)
    except UnexpectedInput as err:
        raise DslSyntaxError([syntax_diagnostic(err, text)]) from err
    except VisitError as err:  # a bug in ToAst, never the user's fault: keep the cause
        raise RuntimeError(f"internal error while reading the syntax tree: {err.orig_exc}") from err
    for stmt in statements:
        if isinstance(stmt, ast.Scalarize) and _depth(stmt.expr) > MAX_DEPTH:
            span = stmt.expr.span
            raise DslSyntaxError([Diagnostic(
                "error", "E007", f"the expression is too large (more than {MAX_DEPTH} nested "
                "operations or calls): split it up", span.line, span.column, span.column + 1)])
    return ast.Program(tuple(statements), tuple(_local.comments))


#: Deeper scalarizers are refused: the checker, `fmt` and the plan walk them recursively.
MAX_DEPTH = 100


def _depth(expr: ast.Expr) -> int:
    """Nesting depth of an expression, computed without recursion (it may be huge)."""
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(node, ast.BinaryExpr):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, ast.NegExpr):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, ast.CallExpr):
            for arg in node.args:
                value = arg.value if isinstance(arg, ast.Keyword) else arg
                if not isinstance(value, ast.Window):
                    stack.append((value, depth + 1))
    return deepest
