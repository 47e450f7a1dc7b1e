"""`dkl agent` (the daemon) and the commands that talk to it: submit, status, pause, ..."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_AGENT = os.environ.get("DKL_AGENT", "tcp://127.0.0.1:5701")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agent",
        help="run the agent daemon next to the microscope",
        description="Run the agent daemon: a control socket (submit, status, pause, resume, "
        "stop, abort, snapshot), a queue of submitted plans, one run at a time, each with "
        "its own run directory and journal. Prints `READY <control endpoint>` once bound.",
    )
    p.add_argument("--control", default=DEFAULT_AGENT, metavar="ADDR",
                   help=f"control socket to bind (default {DEFAULT_AGENT}; :0 picks a free port)")
    p.add_argument("--bus", metavar="ADDR",
                   help="bus proxy's publisher endpoint (`dkl bus` prints it); none: journal only")
    p.add_argument("--runs", default="runs", metavar="DIR", help="where run directories go")
    p.add_argument("--instrument", metavar="ADDR",
                   help="instrument server for plans that name no remote instrument "
                   "(default: start `dkl instrument sim` per plan)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="speed of simulated instruments it starts (default 1)")
    p.add_argument("--deadman", type=float, default=10.0, metavar="S",
                   help="instrument dead-man's switch for simulated instruments (default 10 s)")
    _security_args(p)
    p.set_defaults(func=run_daemon)

    for name, text in [("submit", "queue an experiment on the agent"),
                       ("status", "show the agent's current run"),
                       ("pause", "pause the run at the next step (--now: blank at once)"),
                       ("stop", "finish the run cleanly now"),
                       ("abort", "abort the run"),
                       ("intervene", "steer the run: measure a point next, exclude a region, "
                        "or change the exposure")]:
        q = sub.add_parser(name, help=text, description=text.capitalize() + ".")
        if name == "submit":
            q.add_argument("file", metavar="FILE")
            q.add_argument("--seed", type=int, default=0)
        if name == "pause":
            q.add_argument("--now", action="store_true",
                           help="blank the beam at once; the interrupted step is redone")
        if name == "intervene":
            q.add_argument("what", choices=["measure", "exclude", "exposure"],
                           help="measure X Y | exclude X0 X1 Y0 Y1 | exposure SECONDS")
            q.add_argument("values", nargs="+", type=float, metavar="VALUE")
        if name in ("pause", "stop", "abort", "intervene"):
            q.add_argument("--reason", default="", help="recorded in the journal")
        q.add_argument("--agent", default=DEFAULT_AGENT, metavar="ADDR",
                       help=f"agent control socket (default {DEFAULT_AGENT}, or $DKL_AGENT)")
        q.add_argument("--json", action="store_true", help="print the reply as JSON")
        _client_security_args(q)
        q.set_defaults(func=run_control, action=name)


def _security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="DIR", help="CURVE: directory with this process's keys "
                   "(from `dkl keys init`) and authorized_keys/")
    p.add_argument("--name", default="agent", help="CURVE key name (default agent)")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback address without CURVE")
    p.add_argument("--bus-key", metavar="FILE", help="CURVE: the bus proxy's public key file")
    p.add_argument("--instrument-key", metavar="FILE",
                   help="CURVE: the instrument server's public key file")


def _client_security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="DIR", help="CURVE: directory with this client's keys")
    p.add_argument("--name", default="operator", help="CURVE key name (default operator)")
    p.add_argument("--server-key", metavar="FILE", help="the agent's public key file")


def run_daemon(args: argparse.Namespace) -> int:
    from dkl.agent.daemon import AgentConfig, run_agent
    from dkl.security import client_security, server_security

    config = AgentConfig(control=args.control, bus=args.bus, runs=Path(args.runs),
                         instrument=args.instrument, speed=args.speed, deadman_s=args.deadman,
                         security=server_security(args.keys, args.name),
                         insecure=args.insecure,
                         bus_security=client_security(args.keys, args.name, args.bus_key)
                         if args.bus_key else None,
                         instrument_security=client_security(args.keys, args.name,
                                                             args.instrument_key)
                         if args.instrument_key else None)
    return run_agent(config, announce=lambda line: print(line, flush=True))


def run_control(args: argparse.Namespace) -> int:
    from dkl.bus import BusError, RemoteError, RpcClient
    from dkl.dsl import DslInputError, read_source
    from dkl.security import client_security

    security = client_security(args.keys, args.name, args.server_key)
    kwargs: dict[str, object] = {}
    if args.action == "submit":
        try:
            source = read_source(args.file)
        except DslInputError as err:
            print(err.diagnostics[0].render(args.file, None), file=sys.stderr)
            return 2
        kwargs = {"source": source, "path": str(Path(args.file).resolve()), "seed": args.seed}
    elif args.action == "pause":
        kwargs = {"now": args.now, "reason": args.reason}
    elif args.action in ("stop", "abort"):
        kwargs = {"reason": args.reason}
    elif args.action == "intervene":
        try:
            kwargs = _intervention(args.what, args.values) | {"reason": args.reason}
        except ValueError as err:
            print(f"dkl intervene: {err}", file=sys.stderr)
            return 2
    try:
        with RpcClient(args.agent, security=security, timeout=10.0) as client:
            reply = client.call(args.action, **kwargs)
    except RemoteError as err:
        print(f"dkl {args.action}: {err.code}: {err.message}", file=sys.stderr)
        return 1
    except BusError as err:
        print(f"dkl {args.action}: cannot reach the agent at {args.agent}: {err}", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=2) if args.json else _describe(args.action, reply))
    return 0


def _describe(action: str, reply: dict) -> str:
    if action == "submit":
        return f"queued run {reply['run_id']} -> {reply['run_dir']}"
    if action == "status":
        if reply.get("run_id"):
            bound = reply.get("max_measurements") or "?"
            text = (f"run {reply['run_id']}: {reply['state']}, {reply['measurements']}/{bound} "
                    f"measurements, best {reply.get('best')}")
        else:
            text = "no run in progress"
        if reply.get("last"):
            last = reply["last"]
            text += f"\nlast run {last['run_id']}: {last['exit_status']} ({last['reason']})"
        return text + f"\nqueued: {reply.get('queued', 0)}"
    return f"{action}: accepted (run was {reply.get('state')})"


def _intervention(what: str, values: list[float]) -> dict[str, object]:
    """The control call's arguments for `dkl intervene WHAT VALUES...`."""
    names = {"measure": ("x", "y"), "exclude": ("x0", "x1", "y0", "y1"),
             "exposure": ("exposure_s",)}[what]
    if len(values) != len(names):
        raise ValueError(f"{what} takes {len(names)} values: {' '.join(n.upper() for n in names)}")
    action = "set" if what == "exposure" else what
    return {"action": action, "args": dict(zip(names, values))}
