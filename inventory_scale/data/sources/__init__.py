"""Readers of the real retail data sets under ``../shared/data`` (one module per source).

Each module exposes ``SOURCE``, a :class:`~inventory_scale.data.sources.base.SourceDef` naming the
source folder, its files and frequency and the reader that maps it into the contract's sales,
calendar and item / store attribute frames. :mod:`inventory_scale.data.datasets` picks the reader
from ``data.name``, verifies checksums, fills what the sources lack and writes the tables.
"""
