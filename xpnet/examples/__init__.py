"""Runnable examples: ``python -m xpnet.examples.ring``; ``python -m xpnet.examples.gpt`` (a tiny GPT
on sorting) and ``python -m xpnet.examples.seq_lstm`` (an LSTM on reversing), whose models,
:class:`~xpnet.examples.gpt.GPT` and :class:`~xpnet.examples.seq_lstm.SeqLSTM`, ``xpnet train
--model gpt|lstm`` trains."""
