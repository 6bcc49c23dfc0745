"""Chunked processing of long sequences and memory-budgeted chunk scheduling."""

from lcteach.chunking.processor import RESOLUTIONS, ChunkedProcessor, Span, left_context
from lcteach.chunking.scheduling import largest_chunk, plan_chunks
