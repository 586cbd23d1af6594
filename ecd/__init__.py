"""Neighbor-preserving embedding compression: learn or fit smaller embeddings that keep a teacher's k-nearest-neighbor ranking, measure what survives, sweep and plot the trade-off.

Modules:

- `ecd.figures`: Figure files: offline HTML that loads one shared plotly.js, PNGs rendered in one browser session (a failure is one warning line), and the figures of a training log.
- `ecd.learned`: Codes whose decoder is trained on the teacher's ranking: faiss's residual quantizer picks the codes, and the codebooks that score them are distilled from the teacher's top-k through the one training loop."""

__version__ = "0.1.0"
