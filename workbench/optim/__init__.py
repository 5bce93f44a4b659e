"""Optimizers: turn textual gradients (and successful traces) into proposed parameter values."""
from .demo_optimizer import DemoOptimizer
from .gates import Paired, minibatch_verdict, pair, scores_by_id
from .leak import LEAK_REASON, LeakCheck
from .memory import Attempt, ParameterMemory
from .text_optimizer import TextOptimizer, check_constraints

__all__ = ["Attempt", "DemoOptimizer", "LEAK_REASON", "LeakCheck", "Paired", "ParameterMemory", "TextOptimizer",
           "check_constraints", "minibatch_verdict", "pair", "scores_by_id"]
