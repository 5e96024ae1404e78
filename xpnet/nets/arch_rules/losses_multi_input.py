"""Checkpoint architecture rules of the losses of three or more inputs and CTC (issue 11): none
holds an array (no class weights), so a spec's loss is known completely from its arguments."""

from __future__ import annotations


def rules(L):
    from ..checkpoint_arch import _stateless

    return {cls: _stateless for cls in (L.CTCLoss, L.CosineEmbeddingLoss, L.GaussianNLLLoss, L.MarginRankingLoss,
                                        L.TripletMarginLoss)}
