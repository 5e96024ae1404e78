"""Mixed precision without autograd: :class:`GradScaler` (loss scaling, torch's rules and state
dict) and :class:`MixedPrecision` (float16/bfloat16 forward and backward over float32 master
weights, for a hand-written loop).

>>> amp = xn.MixedPrecision(net, opt, "bf16")     # or "fp16" (with a GradScaler), or None
>>> opt.zero_grad()
>>> with amp.autocast():
...     loss(net(amp.cast(xb)), yb)
...     amp.backward(loss)
>>> amp.step()
"""

from .policy import PRECISIONS, MixedPrecision, precision_dtype
from .scaler import GradScaler

__all__ = ["GradScaler", "MixedPrecision", "PRECISIONS", "precision_dtype"]
