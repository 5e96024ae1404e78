"""Testing helpers that users may call on their own layers."""

from .gradcheck import GradcheckError, gradcheck

__all__ = ["GradcheckError", "gradcheck"]
