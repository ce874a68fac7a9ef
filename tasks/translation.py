"""translation — many-to-many sequence to sequence: a sentence in, its translation out.

Encoder: embedding -> the shared recurrent stack (bidirectional GRU by default); its
final states, forward and backward concatenated, start the decoder. Decoder: one
recurrent layer over the target embeddings (teacher forcing while training, a single
cell stepped by :mod:`seqapps.decoding` when serving), then attention over the
encoder outputs with the decoder state as the query (``model.attention``: additive,
Bahdanau's score; multiplicative, Luong's "general" score; or none, the plain
encoder-decoder that sees the source only through its final state), then
``tanh(W [state; context])`` and the output softmax. Attention reads the decoder
state after its step (Luong's arrangement), so training runs the decoder as one
fused recurrent layer.

The export takes raw strings and returns strings: standardization, vocabulary
lookup, the decoding loop (greedy or beam search with a length penalty) and
detokenization all run inside the graph.

Config keys of note: ``data.source_lang`` / ``data.target_lang`` pick the direction
(``data.source`` is the dataset); ``data.max_length`` source tokens are read (longer
inputs are truncated); ``data.max_output_length`` caps the output steps;
``model.beam_width`` / ``model.length_penalty`` are the export's default decoding.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps import decoding
from seqapps.config import Config, DataConfig, ModelConfig, TrainConfig
from seqapps.data import text as textlib
from seqapps.data.parallel import ParallelVocab, detokenize, load_parallel, standardize
from seqapps.data.pipeline import bucketed_batches
from seqapps.errors import ConfigError, DataError
from seqapps.layers import recurrent_layer, state_size
from seqapps.layers.attention import KINDS, make_attention
from seqapps.predict import Predictor, decode_strings
from seqapps.registry import register
from seqapps.task import Endpoint, Task

LENGTH_BUCKETS = [(1, 5), (6, 10), (11, 15), (16, 20), (21, None)]  # source words


@dataclasses.dataclass
class TranslationData(DataConfig):
    source_lang: str = "fr"          # language translated from (a column / feature / file suffix)
    target_lang: str = "en"          # language translated into
    columns: list[str] = dataclasses.field(default_factory=list)  # languages of a pairs file's columns
    split_by: str = ""               # language whose sentence's MD5 assigns the split (default: target)
    source_vocab_size: int = 8000
    target_vocab_size: int = 6000
    max_length: int = 40             # source tokens read; longer inputs are truncated
    max_output_length: int = 50      # decoding steps at most (end token included)
    lowercase_target: bool = False   # targets keep their case by default (BLEU is cased)


@dataclasses.dataclass
class TranslationModel(ModelConfig):
    cell: str = "gru"                # the benchmarked cell; fewer gates than LSTM, faster on CPU
    units: int = 256                 # encoder units per direction; the decoder has the encoder's width
    embedding_dim: int = 256
    embedding_dropout: float = 0.1
    attention: str = "additive"      # additive | multiplicative | none
    attention_units: int = 512       # additive attention's hidden size
    output_dropout: float = 0.2
    beam_width: int = 4              # the export's default decoding; 1 = greedy
    length_penalty: float = 0.6      # GNMT alpha for beam search; 0 = none


@dataclasses.dataclass
class TranslationTrain(TrainConfig):
    epochs: int = 5                  # the benchmarked recipe: 5 passes, rate 2e-3 falling to 0 on a cosine
    batch_size: int = 128
    learning_rate: float = 2e-3
    decay: str = "cosine"
    patience: int = 2


@dataclasses.dataclass
class TranslationConfig(Config):
    data: TranslationData = dataclasses.field(default_factory=TranslationData)
    model: TranslationModel = dataclasses.field(default_factory=TranslationModel)
    train: TranslationTrain = dataclasses.field(default_factory=TranslationTrain)


def _check_config(cfg) -> None:
    m, d = cfg.model, cfg.data
    if m.attention not in KINDS:
        raise ConfigError(f"model.attention must be one of {', '.join(KINDS)}, got {m.attention!r}")
    if m.beam_width < 1:
        raise ConfigError(f"model.beam_width must be >= 1, got {m.beam_width}")
    if d.max_length < 1 or d.max_output_length < 2:
        raise ConfigError("data.max_length must be >= 1 and data.max_output_length >= 2")
    if d.source_vocab_size < 3 or d.target_vocab_size < 5:
        raise ConfigError("data.source_vocab_size must be >= 3 and data.target_vocab_size >= 5")


# -- model ------------------------------------------------------------------------------------------
def build_seq2seq(m, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
    """The teacher-forced training model: ``{source, target_in}`` ids -> next-token logits."""
    src = keras.Input((None,), dtype="int64", name="source")
    tgt = keras.Input((None,), dtype="int64", name="target_in")
    x = keras.layers.Embedding(source_vocab_size, m.embedding_dim, mask_zero=True, name="source_embedding")(src)
    x = keras.layers.Dropout(m.embedding_dropout, name="source_dropout")(x)
    if m.layers < 1:
        raise ConfigError(f"model.layers must be >= 1, got {m.layers}")
    for i in range(m.layers):
        last = i == m.layers - 1
        out = recurrent_layer(m, return_sequences=True, return_state=last, name=f"encoder_{i + 1}")(x)
        x, states = (out[0], out[1:]) if last else (out, None)
        if m.dropout:
            x = keras.layers.Dropout(m.dropout, name=f"encoder_{i + 1}_dropout")(x)
    values = keras.layers.Identity(name="encoder_outputs")(x)
    n = state_size(m)
    if m.bidirectional:  # [fw states..., bw states...] -> the decoder's state, forward and backward side by side
        init = [keras.layers.Concatenate(name=f"bridge_{j}")([states[j], states[n + j]]) for j in range(n)]
    else:
        init = [keras.layers.Identity(name=f"bridge_{j}")(states[j]) for j in range(n)]
    width = m.units * (2 if m.bidirectional else 1)

    y = keras.layers.Embedding(target_vocab_size, m.embedding_dim, mask_zero=True, name="target_embedding")(tgt)
    y = keras.layers.Dropout(m.embedding_dropout, name="target_dropout")(y)
    h = recurrent_layer(m, units=width, return_sequences=True, bidirectional=False, name="decoder")(
        y, initial_state=init)
    attention = make_attention(m.attention, m.attention_units, name="attention")
    if attention is not None:
        context, _ = attention(h, values, mask=keras.ops.not_equal(src, 0))
        h = keras.layers.Dense(width, activation="tanh", name="combine")(
            keras.layers.Concatenate(name="combine_inputs")([h, context]))
    h = keras.layers.Dropout(m.output_dropout, name="output_dropout")(h)
    logits = keras.layers.Dense(target_vocab_size, dtype="float32", name="logits")(h)
    return keras.Model({"source": src, "target_in": tgt}, logits, name="translation")


class Translator:
    """The serving side of a trained model: encode once, then step the decoder cell."""

    def __init__(self, model: keras.Model, prep: ParallelVocab, cfg):
        m = cfg.model
        self.prep, self.cfg, self.kind = prep, cfg, m.attention
        self.vectorizer = prep.source_vectorizer()
        n = state_size(m)
        # without attention the encoder outputs feed nothing, so the model keeps only the bridges
        outputs = [model.get_layer(f"bridge_{j}").output for j in range(n)]
        if m.attention != "none":
            outputs.append(model.get_layer("encoder_outputs").output)
        self.encoder = keras.Model(model.get_layer("source_embedding").input, outputs, name="encoder")
        self.embedding = model.get_layer("target_embedding")
        self.cell = model.get_layer(f"decoder_{m.cell}").cell
        self.attention = model.get_layer("attention") if m.attention != "none" else None
        self.combine = model.get_layer("combine") if m.attention != "none" else None
        self.logits = model.get_layer("logits")
        self.n_states = n
        never = np.zeros(len(prep.target_vocab), np.float32)
        never[[0, 1, prep.start_id]] = -1e9  # padding, [UNK] and [START] are never produced
        self.never = tf.constant(never)
        self.vocab = tf.constant(prep.target_vocab)

    def step(self, tokens, state):
        embedded = tf.gather(self.embedding.embeddings, tokens)  # the layer would attach a mask
        out, new = self.cell(embedded, [state[f"s{j}"] for j in range(self.n_states)], training=False)
        new_state = {**state, **{f"s{j}": s for j, s in enumerate(new)}}
        extras = {}
        if self.attention is not None:
            context, weights = self.attention(out, state["values"], mask=state["mask"], keys=state.get("keys"))
            out = self.combine(tf.concat([out, context], axis=-1))
            extras = {"attention": weights}
        return self.logits(out) + self.never, new_state, extras

    def source_ids(self, text):
        return textlib.clip_and_pad(self.vectorizer(text), self.prep.max_length)

    def decode(self, text, beam_width, length_penalty):
        """-> dict of translation, tokens (ids), lengths, scores, attention, source ids."""
        ids = self.source_ids(text)
        mask = tf.not_equal(ids, 0)
        source_lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        encoded = self.encoder(ids, training=False)
        encoded = encoded if isinstance(encoded, (list, tuple)) else [encoded]
        state = {f"s{j}": s for j, s in enumerate(encoded[:self.n_states])}
        if self.attention is not None:
            state.update(values=encoded[self.n_states], mask=mask)
            if self.kind == "additive":
                state["keys"] = self.attention.project_values(state["values"])
        max_steps = tf.minimum(self.prep.max_output_length, 2 * tf.reduce_max(tf.concat([source_lengths, [0]], 0)) + 10)
        args = (self.step, state, self.prep.start_id, self.prep.end_id, max_steps)

        def pack(out):
            attn = out["extras"]["attention"] if self.attention is not None else \
                tf.zeros([tf.shape(out["tokens"])[0], tf.shape(out["tokens"])[1], tf.shape(ids)[1]])
            return out["tokens"], out["lengths"], out["scores"], attn

        tokens, lengths, scores, attention = tf.cond(
            tf.cast(beam_width, tf.int32) <= 1,
            lambda: pack(decoding.greedy(*args)),
            lambda: pack(decoding.beam_search(*args, beam_width=tf.cast(beam_width, tf.int32),
                                              length_penalty=length_penalty)))
        words = tf.gather(self.vocab, tokens)
        joined = tf.strings.reduce_join(tf.RaggedTensor.from_tensor(words, lengths=lengths), axis=1, separator=" ")
        translation = detokenize(joined, french_spacing=self.cfg.data.target_lang == "fr")
        translation = tf.where(source_lengths > 0, translation, "")   # nothing to translate -> nothing
        lengths = tf.where(source_lengths > 0, lengths, 0)
        return {"translation": translation, "tokens": tokens, "lengths": lengths, "scores": scores,
                "attention": attention, "source_ids": ids, "source_lengths": source_lengths, "words": words}

    def source_tokens(self, text, width):
        tokens = tf.strings.split(standardize(text))[:, :self.prep.max_length].to_tensor("")
        return tf.pad(tokens, [[0, 0], [0, width - tf.shape(tokens)[1]]], constant_values="")


# -- predictor ----------------------------------------------------------------------------------------
class TranslationPredictor(Predictor):
    @property
    def decoding_defaults(self) -> tuple[int, float]:
        model = self.metadata.get("config", {}).get("model", {})
        return int(model.get("beam_width", 4)), float(model.get("length_penalty", 0.6))

    def translate(self, texts, beam: int | None = None, length_penalty: float | None = None,
                  batch_size: int = 64) -> list[str]:
        """Translations of ``texts`` (a list of str). ``beam`` 1 is greedy; ``None`` uses the
        export's default width (``model.beam_width``) and length penalty."""
        return [r["translation"] for r in self._run(texts, beam, length_penalty, batch_size)]

    def predict(self, texts, beam: int | None = None) -> list[str]:
        return self.translate(texts, beam=beam)

    def attention(self, texts, beam: int = 1, batch_size: int = 64) -> list[dict]:
        """Per text: ``translation``, ``source_tokens``, ``output_tokens`` and ``weights``
        (numpy ``[output tokens, source tokens]``; zeros for ``attention=none``)."""
        return self._run(texts, beam, None, batch_size, signature="attention")

    def _run(self, texts, beam, length_penalty, batch_size, signature=None):
        if isinstance(texts, str):
            raise DataError("translate() takes a list of strings, not one string")
        texts = [str(t) for t in texts]
        default_beam, default_penalty = self.decoding_defaults
        if beam is not None and int(beam) < 1:
            raise DataError(f"beam must be >= 1, got {beam}")
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            if signature == "attention":
                out = self.call("attention", text=chunk, beam_width=int(beam or 1))
            elif beam is None and length_penalty is None:
                out = self.call(text=chunk)
            else:
                out = self.call("translate", text=chunk, beam_width=int(beam or default_beam),
                                length_penalty=float(default_penalty if length_penalty is None else length_penalty))
            translations = decode_strings(out["translation"])
            for i, translation in enumerate(translations):
                row = {"translation": translation}
                if signature == "attention":
                    n_src, n_out = int(out["source_lengths"][i]), int(out["output_lengths"][i])
                    row.update(source_tokens=decode_strings(out["source_tokens"][i][:n_src]),
                               output_tokens=decode_strings(out["output_tokens"][i][:n_out]),
                               weights=np.asarray(out["attention"][i][:n_out + 1, :n_src]))
                results.append(row)
        return results

    def format(self, inputs, results):
        return [str(r) for r in results]


# -- scoring -------------------------------------------------------------------------------------------
def bleu_chrf(hypotheses, references) -> dict:
    import sacrebleu

    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "examples": 0}
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score), "examples": len(hypotheses)}


def bucket_name(lo, hi) -> str:
    return f"{lo}-{hi}" if hi else f"{lo}+"


def score_translations(sources, hypotheses, references) -> dict:
    """Corpus BLEU and chrF (sacreBLEU defaults, 13a tokenization), overall and by source length in words."""
    report = bleu_chrf(hypotheses, references)
    lengths = [len(s.split()) for s in sources]
    report["by_source_length"] = {}
    for lo, hi in LENGTH_BUCKETS:
        idx = [i for i, n in enumerate(lengths) if n >= lo and (hi is None or n <= hi)]
        if idx:
            report["by_source_length"][bucket_name(lo, hi)] = bleu_chrf(
                [hypotheses[i] for i in idx], [references[i] for i in idx])
    return report


@register
class Translation(Task):
    name = "translation"
    topology = "many-to-many (encoder-decoder)"
    description = "sentence -> translated sentence (attention, beam search in the export)"
    default_data = "anki_fra_eng"
    config_class = TranslationConfig
    monitor, monitor_mode = "val_loss", "min"
    predictor_class = TranslationPredictor

    def load_data(self, cfg, data_dir=None):
        _check_config(cfg)
        return load_parallel(cfg.data, self.name, data_dir)

    def fit_preprocessing(self, cfg, splits):
        return ParallelVocab.fit(*splits.train, cfg.data)

    def load_preprocessing(self, cfg, run_dir):
        return ParallelVocab.load(run_dir, cfg.data)

    def datasets(self, cfg, prep, splits):
        def make(split, shuffle):
            source, target_in, target_out = prep.encode(*split)
            if source.nrows() == 0:
                raise DataError(f"{cfg.data.source}: no pair fits data.max_length={prep.max_length} source tokens "
                                f"and data.max_output_length={prep.max_output_length} output steps")
            lengths = np.maximum(source.row_lengths().numpy(), target_in.row_lengths().numpy())
            ds = bucketed_batches({"source": source, "target_in": target_in}, target_out, lengths,
                                  cfg.train.batch_size, shuffle=shuffle, seed=cfg.train.seed)
            return ds.map(lambda x, y: (x, y, tf.cast(tf.not_equal(y, 0), tf.float32)))
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        _check_config(cfg)
        return build_seq2seq(cfg.model, len(prep.source_vocab), len(prep.target_vocab))

    def compile(self, model, cfg, optimizer):
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    def endpoints(self, model, prep, cfg):
        translator = Translator(model, prep, cfg)
        m = cfg.model
        text = tf.TensorSpec([None], tf.string, name="text")
        beam = tf.TensorSpec([], tf.int32, name="beam_width")
        penalty = tf.TensorSpec([], tf.float32, name="length_penalty")

        def serve(text):
            out = translator.decode(text, m.beam_width, m.length_penalty)
            return {"translation": out["translation"], "score": out["scores"]}

        def translate(text, beam_width, length_penalty):
            out = translator.decode(text, beam_width, length_penalty)
            return {"translation": out["translation"], "score": out["scores"]}

        def attention(text, beam_width):
            out = translator.decode(text, beam_width, m.length_penalty)
            return {"translation": out["translation"], "attention": out["attention"],
                    "source_tokens": translator.source_tokens(text, tf.shape(out["source_ids"])[1]),
                    "source_lengths": out["source_lengths"], "output_tokens": out["words"],
                    "output_lengths": out["lengths"]}

        decoding_name = "greedy" if m.beam_width == 1 else f"beam {m.beam_width}, length penalty {m.length_penalty}"
        return {
            "serving_default": Endpoint(serve, [text], f"text -> translation (string), score; decoding: {decoding_name}"),
            "translate": Endpoint(translate, [text, beam, penalty],
                                  "text, beam_width (1 = greedy), length_penalty -> translation, score"),
            "attention": Endpoint(attention, [text, beam],
                                  "text, beam_width -> translation, attention [batch, output, source], "
                                  "source_tokens, source_lengths, output_tokens, output_lengths"),
        }

    def trackables(self, prep):
        return [prep.source_vectorizer()]

    def metadata(self, prep):
        return {"source_vocabulary_size": len(prep.source_vocab), "target_vocabulary_size": len(prep.target_vocab),
                "max_length": prep.max_length, "max_output_length": prep.max_output_length}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        sources, references = examples
        beam, penalty = predictor.decoding_defaults
        hypotheses = predictor.translate(sources)
        report = score_translations(sources, hypotheses, references)
        report["decoding"] = "greedy" if beam == 1 else f"beam {beam} (length penalty {penalty})"
        report["samples"] = [{"source": s, "reference": r, "translation": h}
                             for s, r, h in list(zip(sources, references, hypotheses))[:5]]
        if plot and out_dir is not None:
            report["attention_plots"] = self.plot_attention(predictor, sources, out_dir)
        return report

    def plot_attention(self, predictor, sources, out_dir, per_bucket: int = 1) -> list[str]:
        """Heatmaps for the first sentence(s) of each source-length bucket."""
        from seqapps.viz import plot_attention

        chosen = []
        for lo, hi in LENGTH_BUCKETS:
            picks = [s for s in sources if len(s.split()) >= lo and (hi is None or len(s.split()) <= hi)]
            chosen += picks[:per_bucket]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (source, row) in enumerate(zip(chosen, predictor.attention(chosen))):
            path = out_dir / f"attention-{i + 1}.png"
            plot_attention(row["weights"], row["source_tokens"], row["output_tokens"] + ["[END]"], path,
                           title=f"{source}\n-> {row['translation']}")
            paths.append(str(path))
        return paths

    def format_metrics(self, metrics):
        lines = [f"BLEU {metrics['bleu']:.2f}  chrF {metrics['chrf']:.2f}  ({metrics['examples']} sentences, "
                 f"{metrics.get('decoding', '')}; sacreBLEU 13a, cased)", "", "by source length (words):"]
        for name, m in metrics.get("by_source_length", {}).items():
            lines.append(f"  {name:>6}  BLEU {m['bleu']:6.2f}  chrF {m['chrf']:6.2f}  ({m['examples']} sentences)")
        for s in metrics.get("samples", [])[:3]:
            lines += ["", f"  source:      {s['source']}", f"  reference:   {s['reference']}",
                      f"  translation: {s['translation']}"]
        for p in metrics.get("attention_plots", []):
            lines.append(f"attention map: {p}")
        return "\n".join(lines)
