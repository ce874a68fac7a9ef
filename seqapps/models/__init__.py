"""Models that step: ``initial_state(...)`` and ``step(tokens, state) -> (logits, state, extras)``.

Each is a serializable ``keras.Model`` whose training ``call`` is keras layers and ops
only; :mod:`seqapps.decoding` builds greedy, sampling and beam search over ``step``.
"""

from seqapps.models.captioner import ImageCaptioner
from seqapps.models.char_lm import CharLanguageModel
from seqapps.models.char_transformer import CharTransformer
from seqapps.models.seq2seq import Seq2Seq
from seqapps.models.transformer_seq2seq import TransformerSeq2Seq

__all__ = ["CharLanguageModel", "CharTransformer", "ImageCaptioner", "Seq2Seq", "TransformerSeq2Seq"]
