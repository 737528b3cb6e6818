"""Data for rnnjax: synthetic long-range tasks generated from a key (real corpora arrive later)."""

from rnnjax.datasets.synthetic import adding_task, copy_baseline, copy_task

__all__ = ["adding_task", "copy_baseline", "copy_task"]
