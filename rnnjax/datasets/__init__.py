"""Data for rnnjax: synthetic long-range tasks generated from a key, and real text read out of package archives."""

from rnnjax.datasets import text
from rnnjax.datasets.synthetic import adding_task, copy_baseline, copy_task

__all__ = ["adding_task", "copy_baseline", "copy_task", "text"]
