"""Screen sweeps whose targets each start uniform (carry=False), tuning seeds 0-5: python uncarried.py OUT METHODS"""
import functools
import sys

from nas_estimators import pareto
from screen import run

pareto.sweep = functools.partial(pareto.sweep, carry=False)
run(sys.argv[1], sys.argv[2].split(","))
