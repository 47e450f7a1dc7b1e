"""`dkl explain`: the compiled plan in words, every default shown and marked."""

from __future__ import annotations

from dkl.dsl.errors import DslError
from dkl.dsl.parser import parse
from dkl.dsl.plan import Plan, Region


def _region(r: Region) -> str:
    return f"x {r.x0:g}..{r.x1:g} px, y {r.y0:g}..{r.y1:g} px"


def explain(plan: Plan) -> str:
    """A readable, line-per-setting description of what the plan will do."""
    try:
        said = {s.keyword for s in parse(plan.source).statements}
    except DslError:
        said = set()

    def mark(keyword: str) -> str:
        return "" if keyword in said else "   (default)"

    inst = plan.instrument
    if inst.kind == "builtin":
        where = f"simulated microscope, built-in dataset `{inst.name}`"
    elif inst.kind == "file":
        where = f"simulated microscope replaying {inst.path}"
        if inst.survey:
            where += f" (survey {inst.survey})"
    elif inst.kind == "remote":
        where = f"instrument server at {inst.address}"
    else:
        where = "Nion Swift" + (" (simulated STEM)" if inst.name == "nion-sim" else "")
    acq = plan.acquire
    params = {"ei": f"xi={acq.xi:g}", "pi": f"xi={acq.xi:g}", "ucb": f"beta={acq.beta:g}"}
    acq_text = f"{acq.name.upper() if acq.name in params else acq.name} {params.get(acq.name, '')}"
    if acq.penalty_px:
        acq_text += f" penalty={acq.penalty_px:g} px"
    seed = plan.seed
    seed_text = (f"{seed.kind} {seed.n} points" if seed.kind != "at" else
                 "at " + ", ".join(f"({x:g}, {y:g})" for x, y in seed.points))
    model = plan.model
    stops = []
    for s in plan.stop:
        stops.append({
            "after": f"after {s.value:g} measurements",
            "time": f"after {s.value:g} s",
            "uncertainty": f"when the largest predicted std {s.op} {s.value:g}",
            "best": f"when the best value {s.op} {s.value:g}",
            "dose": f"when the total dose {s.op} {s.value:g} e/A2",
        }[s.kind])
    rows = [
        ("experiment", plan.title or "(untitled)", "experiment"),
        ("instrument", where, "instrument"),
        ("modality", plan.modality, "measure"),
        ("exposure", f"{plan.exposure_s:g} s" if plan.exposure_s else "the instrument's default",
         "exposure"),
        ("patch", f"{plan.patch_px} px", "patch"),
        ("stride", f"{plan.stride_px} px", "stride"),
        ("region", _region(plan.region) if plan.region else "the whole survey", "region"),
        ("exclude", "; ".join(_region(r) for r in plan.exclude) or "nothing", "exclude"),
        ("scalarize", plan.scalarize_text, "scalarize"),
        ("goal", "maximize" if plan.maximize else "minimize",
         "maximize" if plan.maximize else "minimize"),
        ("acquire", acq_text.strip(), "acquire"),
        ("seed", seed_text, "seed"),
        ("model", f"dkl embed={model.embed} hidden={list(model.hidden)} kernel={model.kernel} "
         f"steps={model.steps} lr={model.lr:g} precision={model.precision} linear={model.linear}",
         "model"),
        ("train", f"every {plan.train_every} measurement(s)", "train"),
        ("stop", " or ".join(stops), "stop"),
        ("publish", plan.publish or "the local bus", "publish"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"plan {plan.sha256[:12]}" + (f"  ({plan.path})" if plan.path else "")]
    lines += [f"  {name:<{width}}  {text}{mark(kw)}" for name, text, kw in rows]
    return "\n".join(lines) + "\n"
