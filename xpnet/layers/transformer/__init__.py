"""The transformer layers of ``torch.nn``, as composites of xpnet's MultiheadAttention, Linear,
LayerNorm, Dropout and activations, each with a backward that calls its children's in reverse:

- :class:`TransformerEncoderLayer`, :class:`TransformerDecoderLayer` (``encoder_layer.py``,
  ``decoder_layer.py``; what they share: ``_sublayers.py``);
- :class:`TransformerEncoder`, :class:`TransformerDecoder`: stacks of deep copies (``stacks.py``);
- :class:`Transformer`: an encoder and a decoder stack (``transformer.py``).
"""

from .decoder_layer import TransformerDecoderLayer
from .encoder_layer import TransformerEncoderLayer
from .stacks import TransformerDecoder, TransformerEncoder
from .transformer import Transformer

__all__ = ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerEncoderLayer"]
