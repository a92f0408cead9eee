"""Neural language models: reference and fused recurrent cells, recurrent and fixed-window LMs."""
