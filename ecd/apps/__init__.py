"""Apps: clients of the core and the pipeline, never beside them.

- `ecd.apps.retrieval`: Matryoshka bi-encoder retrieval (sentence-transformers), with its data in `ecd.apps.retrieval_data`;
- `ecd.apps.cascade`: the dimensional cascade on a text corpus.

The modules are exported from `nbs/14_retrieval.ipynb`, `nbs/14a_retrieval_data.ipynb` and `nbs/15_cascade.ipynb`;
this file is not generated (nbdev only creates an empty one)."""
