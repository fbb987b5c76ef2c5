"""The one exception type MSQ raises for bad input; the CLI prints its message and exits 2."""


class MSQError(ValueError):
    """Bad user input or a broken artefact, with a message naming the file, field or layer."""
