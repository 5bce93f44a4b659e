"""Ready pipelines for the paper's four kinds of task; `workbench.tasks` ties each to data and eval."""
from .agent import ReActAgent, parse_step, safe_eval
from .classification import LABELS, QuestionClassifier, parse_label
from .counting import ObjectCounter, parse_count
from .multihop_rag import BM25, MultiHopRAG, parse_answer, parse_query, tokenize

__all__ = ["BM25", "LABELS", "MultiHopRAG", "ObjectCounter", "QuestionClassifier", "ReActAgent", "parse_answer",
           "parse_count", "parse_label", "parse_query", "parse_step", "safe_eval", "tokenize"]
