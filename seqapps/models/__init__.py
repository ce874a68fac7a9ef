"""Models that step: ``initial_state(...)`` and ``step(tokens, state) -> (logits, state, extras)``.

:class:`seqapps.models.base.SettingsModel` is the shared base; each task's model lives in its
folder (``tasks/translation/model.py``...), a serializable ``keras.Model`` whose training
``call`` is keras layers and ops only; :mod:`seqapps.inference.decoding` builds greedy,
sampling and beam search over ``step``.
"""
