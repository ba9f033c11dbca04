"""charrnn: learn a character-level recurrent language model from any text, then write like it."""

__version__ = "0.1.0"
