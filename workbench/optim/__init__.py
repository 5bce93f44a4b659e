"""Optimizers: turn textual gradients (and successful traces) into proposed parameter values."""
from .demo_optimizer import DemoOptimizer
from .memory import Attempt, ParameterMemory
from .text_optimizer import TextOptimizer, check_constraints

__all__ = ["Attempt", "DemoOptimizer", "ParameterMemory", "TextOptimizer", "check_constraints"]
