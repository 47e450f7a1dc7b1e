"""`dkl check FILE...`: validate experiment files without touching hardware."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from dkl.dsl import DslInputError, InstrumentFacts, compile_source, read_source
from dkl.dsl.plan import InstrumentSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check .dkl experiment files",
        description="Check experiment files: syntax, units, functions, modality, ranges, and "
        "(for built-in datasets and dataset files, which are read) the plan against the "
        "instrument: windows inside its signal range, regions inside its grid. "
        "Exit status: 0 when there is no error (warnings allowed), 1 on errors, "
        "2 on usage or I/O problems.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="experiment files to check")
    p.add_argument("--json", action="store_true", help="print diagnostics as JSON lines")
    p.add_argument("--connect", action="store_true",
                   help='also ask a running instrument (`instrument "tcp://..."`) what it '
                   "measures, and check the plan against its answer")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for the instrument with --connect (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            text = read_source(name)
        except DslInputError as err:
            for d in err.diagnostics:
                _emit(args, name, d, None)
            status = max(status, 2)
            continue
        result = compile_source(text, name, resolver=_resolver(args))
        for d in result.diagnostics:
            _emit(args, name, d, text)
        if result.plan is None:
            status = max(status, 1)
        elif not args.json:
            print(f"{name}: ok (plan {result.plan.sha256[:12]})")
    return status


def _emit(args: argparse.Namespace, name: str, diag: object, text: str | None) -> None:
    if args.json:
        print(json.dumps({"file": name, **diag.to_dict()}))  # type: ignore[attr-defined]
    else:
        print(diag.render(name, text), file=sys.stderr)  # type: ignore[attr-defined]


def _resolver(args: argparse.Namespace) -> Callable[[InstrumentSpec], InstrumentFacts | None]:
    def resolve(spec: InstrumentSpec) -> InstrumentFacts | None:
        if spec.kind == "remote":
            return instrument_facts(spec, args.timeout) if args.connect else None
        return dataset_facts(spec)

    return resolve


def instrument_facts(spec: InstrumentSpec, timeout_s: float = 5.0) -> InstrumentFacts | None:
    """What a running instrument server says about itself (`describe()` over the bus).

    Raises ValueError (shown as E145) when it does not answer within `timeout_s`.
    """
    if spec.kind != "remote" or not spec.address:
        return None
    from dkl.instruments.client import InstrumentClient
    from dkl.instruments.protocols import InstrumentError

    bus_log = logging.getLogger("dkl.bus")  # its reconnect warnings would repeat E145
    level = bus_log.level
    bus_log.setLevel(logging.ERROR)
    client = InstrumentClient(spec.address, timeout_s=timeout_s)
    try:
        desc = client.describe()
    except InstrumentError as err:
        raise ValueError(f"no answer within {timeout_s:g} s ({err.code})") from None
    finally:
        client.close()
        bus_log.setLevel(level)
    shape = desc.get("shape")
    low_high = desc.get("signal_range")
    return InstrumentFacts(
        str(desc.get("name", spec.address)),
        str(desc.get("modality", "")),
        (int(shape[0]), int(shape[1])) if shape else None,
        (float(low_high[0]), float(low_high[1])) if low_high else None,
        desc.get("pixel_size_nm"),
    )


def dataset_facts(spec: InstrumentSpec) -> InstrumentFacts | None:
    """What a dataset file says about the instrument (modality, grid, signal range).

    The language package does no I/O, so `dkl check` passes this resolver in: it reads the
    file named by `instrument sim "FILE"` through `dkl.instruments` and returns None for
    instruments that need a connection. Raises ValueError (shown as E143) when the file
    cannot be used.
    """
    if spec.kind != "file" or not spec.path:
        return None
    from dkl.instruments.loaders import DatasetError, load_dataset

    try:
        ds = load_dataset(spec.path, survey=spec.survey)
    except DatasetError as err:
        message = str(err)
        for prefix in (f"{spec.path}: ", f"{spec.survey}: "):
            message = message.removeprefix(prefix)
        raise ValueError(message) from None
    return InstrumentFacts(ds.name, ds.modality, ds.shape, ds.signal_range, ds.pixel_size_nm)
