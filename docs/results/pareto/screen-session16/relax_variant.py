"""Screen a RELAX variant in the table sweep (session 16): python relax_variant.py OUT key=value ...
Keys are Relax() keywords (baseline_decay=0.9, surrogate_steps=4, ...); tuning seeds 0-5, 200/500/1000 queries."""
import sys, json
from pathlib import Path
from nas_estimators import pareto
from nas_estimators.estimators import Relax
from screen import run

out = Path(sys.argv[1]); extra = {}
for item in sys.argv[2:]:
    k, v = item.split("="); extra[k] = json.loads(v)
original = pareto._estimator
def patched(method, options, steps):
    e = original(method, options, steps)
    if method == "relax":
        return Relax(**{"surrogate_width": e.surrogate_width, "surrogate_lr": e.surrogate_lr,
                        "temperature": e.temperature, **extra})
    return e
pareto._estimator = patched
run(out, ["relax"])
