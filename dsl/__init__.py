"""The `.dkl` experiment language: grammar, checker, diagnostics, formatter, plan.

Example:
    >>> from dkl.dsl import compile_source
    >>> result = compile_source("scalarize ratio(peak(1), peak(2)); acquire EI; stop after 200")
    >>> result.plan.acquire.name, result.plan.max_measurements
    ('ei', 200)
"""

from dkl.dsl.check import CheckResult, check
from dkl.dsl.errors import (
    Diagnostic,
    DslError,
    DslInputError,
    DslSemanticError,
    DslSyntaxError,
)
from dkl.dsl.explain import explain
from dkl.dsl.facts import BUILTIN, InstrumentFacts, Resolver
from dkl.dsl.fmt import format_program
from dkl.dsl.parser import parse
from dkl.dsl.plan import (
    Acquisition,
    BinOp,
    Call,
    Expr,
    InstrumentSpec,
    ModelSpec,
    Neg,
    Num,
    Plan,
    Ref,
    Region,
    Seeding,
    StopWhen,
    Win,
)
from dkl.dsl.source import compile_source, load_plan, read_source

__all__ = [
    "BUILTIN",
    "Acquisition",
    "BinOp",
    "Call",
    "CheckResult",
    "Diagnostic",
    "DslError",
    "DslInputError",
    "DslSemanticError",
    "DslSyntaxError",
    "Expr",
    "InstrumentFacts",
    "InstrumentSpec",
    "ModelSpec",
    "Neg",
    "Num",
    "Plan",
    "Ref",
    "Region",
    "Resolver",
    "Seeding",
    "StopWhen",
    "Win",
    "check",
    "compile_source",
    "explain",
    "format_program",
    "load_plan",
    "parse",
    "read_source",
]
