"""``seqlm serve``: the HTTP API and the typing page."""
