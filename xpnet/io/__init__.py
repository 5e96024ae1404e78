"""File formats: safetensors files (written and read by hand) and atomic writes."""

from .atomic import atomic_write
from .safetensors import FormatError, read_safetensors, write_safetensors

__all__ = ["FormatError", "atomic_write", "read_safetensors", "write_safetensors"]
