"""File formats: safetensors files (written and read by hand) and atomic writes."""

from .atomic import atomic_write, remove_stale_temps
from .safetensors import FormatError, SafetensorsFile, open_safetensors, read_safetensors, write_safetensors

__all__ = ["FormatError", "SafetensorsFile", "atomic_write", "open_safetensors", "read_safetensors", "remove_stale_temps",
           "write_safetensors"]
