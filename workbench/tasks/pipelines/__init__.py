"""Ready pipelines for the paper's four kinds of task; `workbench.tasks` ties each to data and eval."""
from .agent import ReActAgent, parse_step, safe_eval
from .classification import LABELS, QuestionClassifier, parse_label
from .counting import ObjectCounter, parse_count
from .hotpotqa import hotpotqa_rag, paragraphs_of, pooled_paragraphs
from .multihop_rag import MultiHopRAG, parse_answer, parse_query
from .retrieval import BM25, tokenize

__all__ = ["BM25", "LABELS", "MultiHopRAG", "ObjectCounter", "QuestionClassifier", "ReActAgent", "hotpotqa_rag",
           "paragraphs_of", "parse_answer", "parse_count", "parse_label", "parse_query", "parse_step",
           "pooled_paragraphs", "safe_eval", "tokenize"]
