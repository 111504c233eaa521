"""Data: readers, per-task checks, templating and label masking, batching.

Importing this package is light (stdlib only); torch/transformers are imported where they are used.
"""

from phitune.data.batching import Collator, collate, plan_batches
from phitune.data.loader import load_eval_records, load_examples, prepare_data, scan_file, split_indices
from phitune.data.records import IGNORE_INDEX, DataReport, EvalRecord, Example, FileReport, LengthStats
from phitune.data.stats import length_stats, padding_tokens

__all__ = [
    "IGNORE_INDEX", "DataReport", "EvalRecord", "Example", "FileReport", "LengthStats",
    "Collator", "collate", "length_stats", "load_eval_records", "load_examples", "padding_tokens", "plan_batches", "prepare_data",
    "scan_file", "split_indices",
]
