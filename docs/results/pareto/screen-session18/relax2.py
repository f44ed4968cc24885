"""relax_variant.py with the sweep's learning-rate rule applied to RELAX too (SCALE_RELAX=1)."""
import os, sys, runpy
from nas_estimators import pareto
if os.environ.get("SCALE_RELAX") == "1":
    pareto.UNSCALED = ()
sys.argv = sys.argv[:]
runpy.run_path("/work/exp/docs/results/pareto/screen-session16/relax_variant.py", run_name="__main__")
