"""Compression (the Nano 2 12B -> 9B step): the memory planner (``memory``) that decides which widths fit
the A10G budget at 128k context, and Minitron pruning: activation importance (``importance``), targets
and their checks (``targets``), and the surgery on HF NemotronH / Llama models (``prune``, ``layout``)."""
